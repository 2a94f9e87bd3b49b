"""Alembic environment: runs against the connection Cirrus hands it."""

from alembic import context

from cirrus.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from cirrus.db.engine import make_engine

        url = config.get_main_option("sqlalchemy.url")
        if not url:  # Cirrus hands a connection; the alembic command needs the URL set
            raise RuntimeError("no connection and no sqlalchemy.url to migrate")
        engine = make_engine(url)
        with engine.connect() as connection:
            _run(connection)
        return
    _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
