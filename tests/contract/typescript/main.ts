// The marketplace's main paths through a client generated from docs/openapi.json (openapi-typescript
// types, openapi-fetch calls). tests/contract/test_generated_clients.py generates generated/api.d.ts
// and type-checks this program with tsc: a call or a field the document does not have fails it.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/api";

type Schemas = components["schemas"];
// JSON replies and problem+json errors: the payment QR also comes as image/svg+xml (`format: "svg"`).
const api = createClient<paths, `application/${string}json`>({ baseUrl: "http://localhost:8000" });
const password = "Sen-hong-Dong-Thap-7";

async function signIn(role: "grower" | "buyer", phone: string): Promise<Record<string, string>> {
  const made = await api.POST("/api/v1/auth/register", { body: { role, name: "Vườn thử", phone, password } });
  if (made.error) throw new Error(made.error.detail);
  const account: Schemas["AccountPublic"] = made.data;
  const tokens = await api.POST("/api/v1/auth/token", { body: { login: account.phone, password } });
  if (!tokens.data) throw new Error(tokens.error.type);
  return { Authorization: `Bearer ${tokens.data.access_token}` };
}

async function growerWithVariety(phone: string, name: string) {
  const headers = await signIn("grower", phone);
  const provinces = await api.GET("/api/v1/provinces");
  const province: Schemas["Province"] = provinces.data![0];
  const wards = await api.GET("/api/v1/provinces/{code}/wards", { params: { path: { code: province.code } } });
  const banks = await api.GET("/api/v1/banks");
  const shop = await api.POST("/api/v1/shops", {
    headers,
    body: {
      name, province_code: province.code, ward_code: wards.data![0].code, street: "12 Lê Lợi", phone,
      delivery: { pickup: true, flat_fee: 30000 },
      bank: { bin: banks.data![0].bin, account_number: "113366668888", holder: "Nguyễn Thị Tư" },
    },
  });
  const product = await api.POST("/api/v1/products", {
    headers,
    body: {
      name: "Súng Thái đỏ", category: "water_lily", status: "active",
      variants: [{ label: "Củ giống", retail_price: 45000, stock: 100,
                   wholesale_tiers: [{ min_quantity: 10, unit_price: 38000 }] }],
    },
  });
  return { headers, shop: shop.data!, variant: product.data!.variants[0], ward: wards.data![0] };
}

const first = await growerWithVariety("0912 701 001", "Vườn Súng Cô Út");
const second = await growerWithVariety("0912 701 002", "Vườn Sen Bà Tư");
const buyer = await signIn("buyer", "0987 701 003");
const found = await api.GET("/api/v1/products", { params: { query: { q: "sung thai", limit: 20 } } });
const contact: Schemas["Contact"] = { name: "Chị Lan", phone: "0987 701 003" };
const address: Schemas["Address"] = { province_code: "92", ward_code: first.ward.code, street: "7 Trần Phú" };

const placed = await api.POST("/api/v1/orders", {
  headers: buyer,
  params: { header: { "Idempotency-Key": crypto.randomUUID() } },
  body: { lines: [{ variant_id: first.variant.id, quantity: 12 }], contact, address,
          payment_method: "bank_transfer", consent: true },
});
if (!placed.data) throw new Error(placed.error.type);
const order: Schemas["OrderCreated"] = placed.data;
const kind: "retail" | "wholesale" = order.lines[0].price_kind;

const checkout = await api.POST("/api/v1/checkouts", {
  headers: buyer,
  params: { header: { "Idempotency-Key": crypto.randomUUID() } },
  body: { lines: [{ variant_id: first.variant.id, quantity: 1 }, { variant_id: second.variant.id, quantity: 2 }],
          contact, address, payment_method: "cod", consent: true },
});
const orders: Schemas["OrderCreated"][] = checkout.data!.orders;

const list = await api.GET("/api/v1/orders", { headers: first.headers, params: { query: { limit: 20 } } });
const counts: Schemas["OrderCounts"] = (await api.GET("/api/v1/orders/counts", { headers: first.headers })).data!;
const one = await api.GET("/api/v1/orders/{order_id}", { headers: buyer, params: { path: { order_id: order.id } } });
const qr = await api.GET("/api/v1/orders/{order_id}/payment-qr", {
  headers: buyer, params: { path: { order_id: order.id }, query: { format: "json" } },
});
const at = { headers: first.headers, params: { path: { order_id: order.id } } };
const confirmed = await api.POST("/api/v1/orders/{order_id}/confirm", at);  // no body to make up
await api.POST("/api/v1/orders/{order_id}/ship", at);
await api.POST("/api/v1/orders/{order_id}/mark-paid", at);
await api.POST("/api/v1/orders/{order_id}/deliver", at);
await api.POST("/api/v1/orders/{order_id}/cancel", { headers: buyer, params: { path: { order_id: orders[1].id } } });
const token = order.tracking_url.split("/").pop()!;
const tracked = await api.GET("/api/v1/tracking/{token}", { params: { path: { token } } });
const problem: Schemas["ProblemDetails"] | undefined = tracked.error;

console.log(found.data?.items.length, kind, list.data?.next_cursor, counts.placed, one.data?.code,
            qr.data?.memo, confirmed.data?.status, tracked.data?.status, problem?.type);
