"""企业微信 (SPEC W3, T2): external contacts, 联系我 codes, tags, customer groups, mass-send and moments tasks, transfer."""
