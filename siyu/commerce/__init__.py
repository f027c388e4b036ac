"""The transaction layer (交易体系层, SPEC X1–X8): catalog and inventory, promotions and the pricing engine,
orders with payments and after-sales, and the H5 store / mini-program API. Areas are separate apps:
``catalog`` ← ``promotions`` ← ``orders`` ← ``store`` (each may import the ones before it, never after).
"""
