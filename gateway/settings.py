import ipaddress
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from common.balancing import split_urls
from common.settings import DEV_SECRET_PREFIX, AppSettings, unprefixed

# Public prefix → upstream service. The longest matching prefix wins. /internal/* is never routed.
DEFAULT_ROUTES: dict[str, str] = {
    "/api/v1/shops": "catalog",
    "/api/v1/products": "catalog",
    "/api/v1/provinces": "catalog",
    "/api/v1/banks": "catalog",
    "/media": "catalog",  # photo files (immutable, named by content hash)
    "/api/v1/orders": "orders",
    "/api/v1/checkouts": "orders",
    "/api/v1/tracking": "orders",
    "/api/v1/notifications": "notify",
    "/api/v1/webhooks": "notify",
    "/api/v1/push": "notify",
}


DEFAULT_RATE_LIMITS: dict[str, tuple[int, int]] = {
    "login-account": (10, 900),  # sign-in attempts per login (phone or email), per 15 minutes
    "login-ip": (30, 60),  # sign-in and refresh attempts per client address, per minute
    "register-ip": (10, 3600),
    "api-key": (600, 60),  # requests per API key, per minute
    "order-ip": (20, 60),  # orders and checkouts placed per client address, per minute
    "reset-login": (3, 900),  # password-reset links or codes asked for one phone or email, per 15 minutes
    "reset-ip": (10, 3600),  # password resets asked from one client address, per hour
    "reset-verify-ip": (20, 900),  # reset codes and links tried from one client address, per 15 minutes
}


class GatewaySettings(AppSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")
    service_name: ClassVar[str] = "gateway"

    port: int = 8000
    database_url: str = "sqlite+aiosqlite:///var/gateway.db"

    # Each service's replicas, comma-separated: requests are spread over them, a replica that refuses
    # connections is skipped for upstream_down_for seconds (common/balancing.py).
    catalog_url: str = "http://127.0.0.1:8001"
    orders_url: str = "http://127.0.0.1:8002"
    notify_url: str = "http://127.0.0.1:8003"
    upstream_down_for: float = Field(5.0, gt=0, le=300)
    routes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ROUTES),
                                   description="JSON object: public path prefix → service name")

    # Upstream HTTP client, one pool per service.
    connect_timeout: float = 2.0
    read_timeout: float = 15.0
    pool_timeout: float = 2.0
    max_connections: int = 100
    # How long a client may take to send a (buffered) JSON body before it is cut off with 408.
    body_timeout: float = 20.0

    # Identity. The signing key is base64url of an Ed25519 seed; in development a shared key pair
    # under var/keys/ is used (see common/keys.py).
    jwt_private_key: SecretStr = SecretStr(DEV_SECRET_PREFIX + "use-var-keys")
    access_ttl: int = Field(900, ge=60, le=900, description="Access token lifetime, seconds (≤ 15 min)")
    api_key_token_ttl: int = Field(60, ge=10, le=300)
    refresh_ttl: int = 30 * 24 * 3600

    # Proxies in front of the gateway (comma-separated addresses or networks: "172.30.0.10",
    # "10.0.0.0/8"). Only a request arriving from one of them has its X-Forwarded-For and
    # X-Forwarded-Proto believed; from anyone else they change nothing. Empty: none is trusted.
    trusted_proxies: str = ""

    # Rate limits: rule → [requests, window seconds]. In memory unless redis_url is set.
    redis_url: str = ""
    rate_limits: dict[str, tuple[int, int]] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))

    # Password reset (gateway/identity/reset.py): how long a link or a code works, and wrong codes
    # before it stops working.
    password_reset_ttl: int = Field(600, ge=60, le=3600)
    password_reset_code_tries: int = Field(5, ge=1, le=10)
    # Where reset codes go by SMS (gateway/identity/sms.py), like SMTP_URL for mail: empty, the log (the
    # code itself only in development); esms://API_KEY:SECRET_KEY@rest.esms.vn?brandname=NAME, eSMS.vn.
    sms_url: str = ""
    sms_timeout: float = Field(10.0, gt=0, le=60)
    # The scraper's credential for the gateway's /metrics (Authorization: Bearer): its own, so that
    # whoever scrapes cannot also call the services' /internal/* routes.
    metrics_token: SecretStr = unprefixed("METRICS_TOKEN",
                                          SecretStr(DEV_SECRET_PREFIX + "metrics-token-change-me-0000000"))

    max_json_body_bytes: int = 1_048_576
    max_upload_bytes: int = 16 * 1_048_576  # photos: 15 MB plus the multipart envelope

    @field_validator("catalog_url", "orders_url", "notify_url")
    @classmethod
    def _service_origins(cls, value: str) -> str:
        split_urls(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        for item in proxy_list(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (names are not accepted)") from None
        return value

    def upstream_urls(self) -> dict[str, str]:
        return {"catalog": self.catalog_url, "orders": self.orders_url, "notify": self.notify_url}


def proxy_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
