"""The mix of benches/mix.rs in the stack todo-db replaces: SQLModel models on SQLAlchemy's asyncio
engine with asyncpg, the Python module's pool (20 connections + 30 overflow, pre-ping, recycle after
5 minutes), one session per operation as a FastAPI dependency gives it, and the user's identity set
at the start of every transaction the session begins (`set_config('app.user_id', ..., true)`, so
RLS applies, as for every other side). The operations are written as that module writes them:
read with the ORM, change the object, commit, refresh; a task is returned with its tag names, as
todo-db returns it.

Driven by benches/mix.rs: PEER_URL (the login user scopes use) and PEER_SLOW_URL (the same through
the latency proxy) in the environment, never on the command line; one JSON command per line on
stdin, one JSON answer per line on stdout:

  {"cmd": "mix", "clients": 8, "seconds": 5, "via": "direct"|"proxy"}
      -> {"ops": N, "seconds": S, "latencies": [[ms, ...] per operation], "cpu": seconds}
  {"cmd": "trips", "op": I, "samples": N}
      -> {"p50": [direct ms, proxy ms]}   (operation I alone, direct and proxied alternately)
  {"cmd": "list", "user": "<uuid>"}
      -> {"tasks": [[task id, owner id], ...]}   (the user's first page of open tasks)
  {"cmd": "stop"}

Its first line is {"ready": true, "versions": {...}}.
"""

import asyncio
import json
import os
import random
import resource
import ssl
import sys
import time
import uuid
import warnings
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Optional
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event, func, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

# The mix: name and weight, in benches/mix.rs's order.
OPS = [("list", 50), ("create", 15), ("complete", 15), ("tag", 10), ("summary", 10)]
TAGS = ["work", "home", "errands"]

# The summary reads a view with plain SQL, as the Python module does, through `session.execute`,
# which SQLModel steers towards its `exec` (for ORM selects) with a warning on every call.
warnings.filterwarnings("ignore", message=r"\s*\W* You probably want to use `session.exec\(\)`")


def now() -> datetime:
    return datetime.now(timezone.utc)


def stamp():
    return Field(default_factory=now, sa_type=sa.DateTime(timezone=True))


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID
    title: str
    description: str = ""
    priority: str = Field(
        default="medium",
        sa_type=sa.Enum("low", "medium", "high", "urgent", name="task_priority", create_type=False),
    )
    status: str = Field(
        default="todo",
        sa_type=sa.Enum("todo", "in_progress", "review", "done", "blocked", name="task_status", create_type=False),
    )
    completed: bool = False
    completed_at: Optional[datetime] = Field(default=None, sa_type=sa.DateTime(timezone=True))
    due_at: Optional[datetime] = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = stamp()
    updated_at: datetime = stamp()


class Tag(SQLModel, table=True):
    __tablename__ = "tags"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID
    name: str
    color: Optional[str] = None
    created_at: datetime = stamp()


class TaskTag(SQLModel, table=True):
    __tablename__ = "task_tags"
    user_id: uuid.UUID = Field(primary_key=True)
    task_id: uuid.UUID = Field(primary_key=True)
    tag_id: uuid.UUID = Field(primary_key=True)


@event.listens_for(Session, "after_begin")
def set_identity(session, transaction, connection):
    """Every transaction a session begins runs as its user (RLS), for that transaction only."""
    user = session.info.get("user")
    if user is not None:
        connection.execute(text("select set_config('app.user_id', :user, true)"), {"user": str(user)})


def engine_for(url: str):
    """The Python module's engine: TLS as the URL asks (verify-full against its root certificate),
    20 connections + 30 overflow, pre-ping, recycle after 5 minutes."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    connect_args = {}
    if query.get("sslmode", ["disable"])[0] != "disable":
        context = ssl.create_default_context(cafile=query.get("sslrootcert", [None])[0])
        connect_args["ssl"] = context
    plain = urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, "", ""))
    return create_async_engine(
        plain, pool_size=20, max_overflow=30, pool_pre_ping=True, pool_recycle=300, connect_args=connect_args
    ), connect_args


def session_for(engine, user) -> AsyncSession:
    """What a FastAPI dependency yields: a session for the request, its user recorded."""
    session = AsyncSession(engine)
    session.info["user"] = user
    return session


def read(task: Task, tags: dict) -> dict:
    """A task as the API returns it: its fields and its tag names, sorted."""
    out = task.model_dump()
    out["tags"] = sorted(tags.get(task.id, []), key=str.lower)
    return out


async def tags_of(session: AsyncSession, ids) -> dict:
    if not ids:
        return {}
    rows = await session.exec(
        select(TaskTag.task_id, Tag.name)
        .join(Tag, (Tag.user_id == TaskTag.user_id) & (Tag.id == TaskTag.tag_id))
        .where(col(TaskTag.task_id).in_(ids))
    )
    found: dict = {}
    for task_id, name in rows.all():
        found.setdefault(task_id, []).append(name)
    return found


async def list_open(engine, user):
    async with session_for(engine, user) as session:
        tasks = (
            await session.exec(
                select(Task)
                .where(Task.completed == False)  # noqa: E712 (SQL, not Python)
                .order_by(col(Task.created_at).desc(), col(Task.id).desc())
                .limit(20)
            )
        ).all()
        tags = await tags_of(session, [t.id for t in tasks])
        return [read(t, tags) for t in tasks]


async def create(engine, user, title):
    async with session_for(engine, user) as session:
        task = Task(user_id=user, title=title)
        session.add(task)
        await session.commit()
        await session.refresh(task)
        return read(task, {})


async def complete(engine, user, task_id):
    async with session_for(engine, user) as session:
        task = await session.get(Task, task_id)
        if task is None:
            return None
        task.completed = True
        task.status = "done"
        task.completed_at = task.completed_at or now()
        session.add(task)
        await session.commit()
        await session.refresh(task)
        return read(task, await tags_of(session, [task.id]))


async def tag(engine, user, task_id, name):
    async with session_for(engine, user) as session:
        task = await session.get(Task, task_id)
        if task is None:
            return None
        found = (
            await session.exec(select(Tag).where(Tag.user_id == user, func.lower(Tag.name) == name.lower()))
        ).first()
        if found is None:
            found = Tag(user_id=user, name=name)
            session.add(found)
            await session.flush()
        if await session.get(TaskTag, (user, task.id, found.id)) is None:
            session.add(TaskTag(user_id=user, task_id=task.id, tag_id=found.id))
        await session.commit()
        await session.refresh(task)
        return read(task, await tags_of(session, [task.id]))


async def summary(engine, user):
    async with session_for(engine, user) as session:
        rows = await session.execute(text("select * from user_task_summary order by user_id limit 100"))
        return [dict(r) for r in rows.mappings().all()]


class Mix:
    def __init__(self, users, tasks, engines):
        self.users = users
        self.tasks = tasks
        self.engines = engines
        self.conflicts = 0

    async def one(self, engine, i):
        user = random.choice(self.users)
        task_user, task = random.choice(self.tasks)
        if i == 0:
            await list_open(engine, user)
        elif i == 1:
            await create(engine, user, "benchmark task")
        elif i == 2:
            await complete(engine, task_user, task)
        elif i == 3:
            name = random.choice(TAGS)
            try:
                await tag(engine, task_user, task, name)
            except IntegrityError:
                # Another client created the same tag for the same user first: the service
                # retries, and finds it this time.
                self.conflicts += 1
                await tag(engine, task_user, task, name)
        else:
            await summary(engine, user)

    async def run(self, clients, seconds, via):
        engine = self.engines[via]
        weights = [w for _, w in OPS]
        latencies = [[] for _ in OPS]
        deadline = time.monotonic() + seconds
        count = 0

        async def client():
            nonlocal count
            while time.monotonic() < deadline:
                i = random.choices(range(len(OPS)), weights)[0]
                t = time.perf_counter()
                await self.one(engine, i)
                latencies[i].append((time.perf_counter() - t) * 1000.0)
                count += 1

        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return {"ops": count, "seconds": elapsed, "latencies": latencies, "cpu": cpu, "conflicts": self.conflicts}

    async def trips(self, op, samples):
        times = {"direct": [], "proxy": []}
        for _ in range(samples):
            for via in ("direct", "proxy"):
                t = time.perf_counter()
                await self.one(self.engines[via], op)
                times[via].append((time.perf_counter() - t) * 1000.0)
        p50 = [sorted(times[v])[(len(times[v]) - 1) // 2] for v in ("direct", "proxy")]
        return {"p50": p50}


async def load(url):
    """The benchmark's users and open tasks (bench_users, bench_tasks), read once with asyncpg."""
    parts = urlsplit(url)
    _, connect_args = engine_for(url)
    conn = await asyncpg.connect(urlunsplit(("postgresql", parts.netloc, parts.path, "", "")), **connect_args)
    try:
        users = [r[0] for r in await conn.fetch("select id from bench_users order by n")]
        tasks = [(r[0], r[1]) for r in await conn.fetch("select user_id, task_id from bench_tasks order by n")]
    finally:
        await conn.close()
    return users, tasks


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main():
    url, slow_url = os.environ["PEER_URL"], os.environ["PEER_SLOW_URL"]
    users, tasks = await load(url)
    engines = {"direct": engine_for(url)[0], "proxy": engine_for(slow_url)[0]}
    mix = Mix(users, tasks, engines)
    versions = {p: version(p) for p in ("sqlmodel", "SQLAlchemy", "asyncpg", "pydantic")}
    versions["python"] = sys.version.split()[0]
    answer({"ready": True, "versions": versions})
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        if command["cmd"] == "mix":
            answer(await mix.run(command["clients"], command["seconds"], command.get("via", "direct")))
        elif command["cmd"] == "trips":
            answer(await mix.trips(command["op"], command["samples"]))
        elif command["cmd"] == "list":
            tasks = await list_open(engines["direct"], uuid.UUID(command["user"]))
            answer({"tasks": [[str(t["id"]), str(t["user_id"])] for t in tasks]})
        elif command["cmd"] == "stop":
            break
        else:
            answer({"error": f"unknown command {command['cmd']!r}"})
    for engine in engines.values():
        await engine.dispose()
    answer({"stopped": True})


if __name__ == "__main__":
    asyncio.run(main())
