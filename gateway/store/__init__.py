"""The store: peewee models shared by the app, the gateway and the CLI, and the queries on them."""
