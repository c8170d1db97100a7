"""db_service rds: carrying out the RDS actions of a plan (rds_plan.py), as part of Run (run.py):
each step records what it made or removed in the state at once, like the EC2 steps."""

from stack.aws import rds
from stack.aws.clients import Clients
from stack.aws.plan import Action, Actual
from stack.aws.rds_model import RdsActual
from stack.aws.rds_plan import READY, database_entry, rds_group
from stack.settings import Settings
from stack.state import State


def _progress(line: str) -> None:
    print(line, flush=True)


class RdsSteps:
    """Mixed into Run: the `_<op>_rds_instance` / `_<op>_db_subnet_group` methods do_all calls."""

    aws: Clients
    settings: Settings
    actual: Actual
    state: State
    rds_touched = False  # created, started or changed by this run: wait for it to be ready again
    rds_deleting: str | None = None

    def save(self) -> None:  # Run's
        raise NotImplementedError

    @property
    def _rds(self) -> RdsActual:
        if self.actual.rds is None:
            self.actual.rds = RdsActual()
        return self.actual.rds

    # "+" ------------------------------------------------------------------------------------------
    def _create_db_subnet_group(self, action: Action) -> None:
        rds.create_subnet_group(self.aws.rds, self.settings, action.data["subnets"])
        self._rds.subnet_group = action.name
        _progress(f"  created DB subnet group {action.name} ({action.detail})")

    def _create_rds_instance(self, action: Action) -> None:
        group_id = self.actual.groups[rds_group(self.settings)]
        self._rds.instance = rds.create_instance(self.aws.rds, self.settings, group_id)
        self.rds_touched = True
        self.save()
        _progress(f"  creating RDS instance {action.name} ({self.settings.rds_instance_class}; RDS takes 5-15 minutes)")

    # "~" ------------------------------------------------------------------------------------------
    def _change_rds_instance(self, action: Action) -> None:
        if action.data.get("start"):
            self.aws.rds.start_db_instance(DBInstanceIdentifier=action.name)
            _progress(f"  starting RDS instance {action.name}")
        else:
            rds.modify_instance(self.aws.rds, action.name, action.data["modify"])
            _progress(f"  changing RDS instance {action.name}: {action.detail}")
        self.rds_touched = True

    # "-" ------------------------------------------------------------------------------------------
    def _destroy_rds_instance(self, action: Action) -> None:
        found = self._rds.instance
        assert found is not None, "plan_rds_destroy plans a deletion only for an instance it found"
        snapshot = action.data["snapshot"]
        rds.delete_instance(self.aws.rds, found, snapshot, _progress)
        self.rds_deleting = action.name
        if snapshot:
            _progress(
                f"  deleting RDS instance {action.name} after its final snapshot {snapshot} (kept: restore "
                f"with aws rds restore-db-instance-from-db-snapshot --db-snapshot-identifier {snapshot})"
            )
        else:
            _progress(f"  deleting RDS instance {action.name} without a final snapshot")

    def _destroy_db_subnet_group(self, action: Action) -> None:
        rds.delete_subnet_group(self.aws.rds, action.name, _progress)
        self._rds.subnet_group = None
        _progress(f"  deleted DB subnet group {action.name}")

    # waiting --------------------------------------------------------------------------------------
    def wait_for_database(self, wait: bool) -> None:
        """Until the instance serves connections (when this run touched it or it is not ready yet);
        then its endpoint goes into the state's "database" entry for the deploy."""
        found = self._rds.instance
        if found is None:
            return
        if not wait:
            if found.status not in READY or not found.address:
                _progress(
                    f"  --no-wait: RDS instance {found.identifier} is {found.status}; run python provision.py "
                    "again before deploying (it waits for it and records its endpoint)"
                )
                return
        elif self.rds_touched or found.status not in READY:
            found = self._rds.instance = rds.wait_until_ready(self.aws.rds, found.identifier, _progress)
        self.state.database = database_entry(found, self.aws.region)
        self.save()

    def wait_for_database_deleted(self) -> None:
        if self.rds_deleting:
            rds.wait_until_gone(self.aws.rds, self.rds_deleting, _progress)
            self._rds.instance = None
            self.state.database = None
            self.save()
