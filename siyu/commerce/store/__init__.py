"""The consumer storefront (SPEC X8): the H5 store inside WeChat's browser and the mini-program JSON API over the same services."""
