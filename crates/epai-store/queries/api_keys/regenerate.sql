SELECT api_key FROM regenerate_api_key_for_partner()
