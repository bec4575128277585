"""The mobile web: server-rendered pages for growers and buyers, Vietnamese by default.

``router`` holds every page; the gateway includes it before its catch-all proxy. See
docs/architecture.md (Web pages) and docs/decisions/0007-server-rendered-web.md.
"""

from fastapi import APIRouter

from gateway.web import (
                         assets,
                         cart,
                         grower,
                         grower_orders,
                         grower_push,
                         grower_sales,
                         password_reset,
                         problems,
                         public,
                         pwa,
)

router = APIRouter(include_in_schema=False)
router.include_router(assets.router)
router.include_router(pwa.router)
router.include_router(grower_orders.router)  # /grower/orders/new before /grower/orders/{id}
router.include_router(grower.router)
router.include_router(grower_sales.router)
router.include_router(grower_push.router)
router.include_router(password_reset.router)
router.include_router(public.router)
router.include_router(cart.router)
router.include_router(problems.router)

__all__ = ["router"]
