"""Running replay work behind everything else on the machine (`manage.py replay_lane`).

Three things decide whether a replay process really waits for live work on Linux:
- its nice value, which only ranks it inside its scheduling group;
- that group: with autogroup scheduling (kernel.sched_autogroup_enabled, on by default) every
  session is a group and the groups share the CPU equally whatever their processes' nice values,
  so a niced process alone in its session still gets a full share;
- its database server process, which does half the work of every query at its own priority.

`lower()` handles the process and its group; `lower_database_backend()` each connection's server
process when PostgreSQL runs on this machine and this user may change it (root or postgres).
With `idle`, both also get SCHED_IDLE: they then run only on a core nothing else wants, and a
waking live process takes the core from them at once. Such a connection is marked as running
behind live work (`runs_behind_live`), and its replay pumps stop watching for waiting live
events (integrations.replay.runner.live_leaves_room): the kernel already puts those first.
"""

import os
from dataclasses import dataclass

LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
BEHIND_LIVE = "runs_behind_live"  # an attribute of a Django connection (one per thread)


def runs_behind_live(connection) -> bool:
    """Whether this thread's process and its database connection both run at SCHED_IDLE."""
    return getattr(connection, BEHIND_LIVE, False)


@dataclass(frozen=True)
class Priority:
    nice: int = 19
    idle: bool = True

    def apply_to(self, pid: int) -> None:
        """Set another process's niceness (and SCHED_IDLE); raises OSError when not allowed."""
        os.setpriority(os.PRIO_PROCESS, pid, self.nice)
        if self.idle and hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))

    def lower(self) -> None:
        """This process, before it starts threads (they inherit it), and its session's scheduling
        group when it leads that session: a process started from someone's shell leaves the
        shell's group alone."""
        self.apply_to(0)
        if os.getsid(0) != os.getpid():
            return
        try:
            with open("/proc/self/autogroup", "w") as group:
                group.write(str(self.nice))
        except OSError:  # a kernel without autogroup scheduling
            pass

    def lower_database_backend(self, connection) -> str | None:
        """The server process of this (just opened) connection; returns why not, if it could not.
        (SQLite runs inside this process, already lowered.)"""
        why_not = self._lower_backend(connection)
        setattr(connection, BEHIND_LIVE, self.idle and why_not is None)
        return why_not

    def _lower_backend(self, connection) -> str | None:
        if connection.vendor != "postgresql":
            return None
        host = connection.settings_dict.get("HOST") or ""
        if host not in LOCAL_HOSTS and not host.startswith("/"):
            return f"the database server {host} is not on this machine"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        try:
            self.apply_to(pid)
        except OSError as error:  # not ours to change (neither root nor postgres), or gone
            return f"cannot lower the priority of database process {pid}: {error.strerror}"
        return None


def scheduling(pid: int) -> tuple[int, bool]:
    """(niceness, SCHED_IDLE?) of a process, as the kernel has it."""
    with open(f"/proc/{pid}/stat") as stat:
        niceness = int(stat.read().rsplit(")", 1)[1].split()[16])
    return niceness, hasattr(os, "SCHED_IDLE") and os.sched_getscheduler(pid) == os.SCHED_IDLE
