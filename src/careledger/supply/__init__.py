"""Drug supply chain: GS1 identifiers (GTIN, SGTIN, SSCC, SGLN, Digital Link, element strings)."""
