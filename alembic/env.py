"""Alembic environment: the same migrations for SQLite and PostgreSQL, run with the app's
async driver. The URL comes from the config the app builds (app.db.alembic_config)."""

from __future__ import annotations

import asyncio
import logging.config

from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import app.tables  # noqa: F401  (registers the tables on the metadata)
from alembic import context
from app.tables import metadata

config = context.config
if config.config_file_name and config.attributes.get("configure_logger", True):
    logging.config.fileConfig(config.config_file_name)

target_metadata = metadata


def render_item(kind: str, obj: object, autogen_context: object) -> str | bool:
    """Our UTCDateTime decorator is a DateTime(timezone=True) column in the database."""
    from app.tables import UTCDateTime

    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, dialect_opts={"paramstyle": "named"},
                      render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True, render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url") or "",
                                 poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    asyncio.run(_online())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
