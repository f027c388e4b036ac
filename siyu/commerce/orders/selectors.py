"""Reads of orders, after-sales requests and complaints, with the role rules applied.

Service staff see the orders of the customers they own; analysts read everything with the delivery
address masked; operators and admins see all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Q, QuerySet

from siyu.commerce.orders import domain
from siyu.commerce.orders.models import AfterSale, Complaint, Order
from siyu.core.crypto import mask_name, mask_phone
from siyu.core.errors import SiyuError
from siyu.core.models import Membership, Workspace
from siyu.core.timeutil import start_of_local_day
from siyu.customers.models import Customer

MAX_NUMBER = 32


@dataclass(frozen=True)
class OrderFilter:
    order_status: str = ""
    payment_status: str = ""
    fulfilment_status: str = ""
    date_from: date | None = None
    date_to: date | None = None
    customer_id: int | None = None
    number: str = ""


def _scoped(queryset: QuerySet, membership: Membership, customer_field: str = "customer") -> QuerySet:
    if not membership.sees_all_customers:
        queryset = queryset.filter(**{f"{customer_field}__owner_id": membership.user_id})
    return queryset


def orders_list(*, workspace: Workspace, membership: Membership, search: OrderFilter | None = None) -> QuerySet:
    search = search or OrderFilter()
    queryset = _scoped(Order.objects.filter(workspace=workspace), membership)
    if search.order_status:
        queryset = queryset.filter(order_status=search.order_status)
    if search.payment_status:
        queryset = queryset.filter(payment_status=search.payment_status)
    if search.fulfilment_status:
        queryset = queryset.filter(fulfilment_status=search.fulfilment_status)
    if search.date_from:
        queryset = queryset.filter(created_at__gte=start_of_local_day(search.date_from))
    if search.date_to:
        queryset = queryset.filter(created_at__lt=start_of_local_day(search.date_to) + timedelta(days=1))
    if search.customer_id:
        queryset = queryset.filter(customer_id=search.customer_id)
    if search.number:
        queryset = queryset.filter(number__startswith=search.number[:MAX_NUMBER])
    return queryset.select_related("customer").order_by("-created_at", "-pk")


def order_for_staff(*, workspace: Workspace, membership: Membership, order_id: int) -> Order:
    """One order, or a 404 when it is not in the workspace or not visible to this staff member."""
    order = _scoped(Order.objects.filter(workspace=workspace, pk=order_id), membership) \
        .select_related("customer").first()
    if order is None:
        raise SiyuError("not_found", "订单不存在", "Order not found", status=404)
    return order


def address_for(order: Order, membership: Membership | None) -> dict[str, str]:
    """The delivery address; masked (name, phone, street) for roles that may not see personal data."""
    address = order.address
    if membership is not None and not membership.sees_personal_data and address:
        address = {**address, "name": mask_name(address.get("name")), "phone": mask_phone(address.get("phone")),
                   "detail": "****"}
    return address


def order_detail(*, order: Order, membership: Membership | None = None) -> dict:
    """Everything the detail page shows: lines, price explanation, full history, refunds, after-sales."""
    return {
        "order": order,
        "lines": list(order.lines.order_by("pk")),
        "address": address_for(order, membership),
        "adjustments": list((order.price_explanation or {}).get("adjustments", [])),
        "history": list(order.history.select_related("actor").order_by("at", "pk")),
        "refunds": list(order.refunds.select_related("created_by").order_by("created_at", "pk")),
        "aftersales": list(order.aftersales.prefetch_related("lines__line").order_by("-created_at")),
        "complaints": list(order.complaints.order_by("-created_at")),
        "refundable_fen": max(order.paid_fen - sum(r.amount_fen for r in order.refunds.all()
                                                   if r.status in {"requested", "succeeded"}), 0),
    }


def orders_of(customer: Customer) -> QuerySet:
    """A customer's own orders (and those of profiles merged into them), newest first (the store's 我的订单)."""
    merged = Customer.objects.filter(merged_into=customer).values("pk")
    return Order.objects.filter(Q(customer=customer) | Q(customer__in=merged), workspace_id=customer.workspace_id) \
        .prefetch_related("lines").order_by("-created_at", "-pk")


def aftersales_list(*, workspace: Workspace, membership: Membership, status: str = "") -> QuerySet:
    queryset = _scoped(AfterSale.objects.filter(workspace=workspace), membership, "order__customer")
    if status == "open":
        queryset = queryset.filter(status__in=domain.AFTERSALE_OPEN)
    elif status:
        queryset = queryset.filter(status=status)
    return queryset.select_related("order").prefetch_related("lines__line").order_by("-created_at", "-pk")


def complaints_list(*, workspace: Workspace, membership: Membership, status: str = "") -> QuerySet:
    queryset = _scoped(Complaint.objects.filter(workspace=workspace), membership)
    if status:
        queryset = queryset.filter(status=status)
    return queryset.select_related("order").order_by("-created_at", "-pk")


def aftersale_for_staff(*, workspace: Workspace, membership: Membership, aftersale_id: int) -> AfterSale:
    aftersale = _scoped(AfterSale.objects.filter(workspace=workspace, pk=aftersale_id), membership,
                        "order__customer").select_related("order").first()
    if aftersale is None:
        raise SiyuError("not_found", "售后单不存在", "After-sales request not found", status=404)
    return aftersale


def complaint_for_staff(*, workspace: Workspace, membership: Membership, complaint_id: int) -> Complaint:
    complaint = _scoped(Complaint.objects.filter(workspace=workspace, pk=complaint_id), membership).first()
    if complaint is None:
        raise SiyuError("not_found", "投诉不存在", "Complaint not found", status=404)
    return complaint


def open_counts(*, workspace: Workspace, membership: Membership) -> dict[str, int]:
    orders = _scoped(Order.objects.filter(workspace=workspace), membership)
    return {
        "to_ship": orders.filter(order_status=domain.CONFIRMED, fulfilment_status=domain.UNFULFILLED).count(),
        "unpaid": orders.filter(order_status=domain.PENDING_PAYMENT).count(),
        "aftersales": aftersales_list(workspace=workspace, membership=membership, status="open").count(),
        "complaints": complaints_list(workspace=workspace, membership=membership, status="open").count(),
    }


def parse_day(text: str) -> date | None:
    try:
        return datetime.strptime((text or "").strip(), "%Y-%m-%d").date() if text else None
    except ValueError:
        raise SiyuError("invalid_date", "日期格式应为 YYYY-MM-DD", "Dates must look like YYYY-MM-DD") from None

