"""Who the consumer is (SPEC W2, X8): 小程序 code2session login, phone number, subscribe messages, and H5 OAuth."""
