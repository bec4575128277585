"""What the payment endpoints reply."""

from pydantic import BaseModel, Field


class PaymentQrOut(BaseModel):
    """A bank transfer's VietQR: scan it in any Vietnamese bank app, or copy the details by hand."""

    order_id: int
    order_code: str
    payment_status: str = Field(description="`paid` once the grower marked the order paid: do not pay again")
    payload: str = Field(description="The NAPAS EMVCo (VietQR) payload the QR code encodes")
    amount: int = Field(description="The order's total, integer VND")
    memo: str = Field(description="The transfer's content: the order code, ASCII (what the grower looks for)")
    bank_bin: str = Field(description="The shop's bank, as a NAPAS BIN")
    bank_name: str | None
    account_number: str
    account_holder: str | None
    svg: str = Field(description="The QR code as an SVG document, to inline in a page")
    svg_url: str = Field(description="The same SVG as a file (image/svg+xml), for an <img>")
