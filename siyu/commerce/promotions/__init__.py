"""Promotions and the pricing engine (SPEC X2, X3): coupons, 满减, limited-time discounts, member prices, points deduction, flash sales; one engine for every price shown or charged."""
