// placeholder until the redaction engine lands
