"""DynamoDB adapters of the domain's ports (user repository, unit of work), over aiobotocore."""
