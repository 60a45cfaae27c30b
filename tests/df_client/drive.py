"""Drives the app with the official Durable Functions Python client (azure-functions-durable),
unmodified, through the same HTTP API it uses against the Durable Functions extension: start,
status (with history), raise event, suspend/resume, terminate, restart, query by status and
prefix, purge one and by filter; the typed ClaimApprovalWorkflow end to end, though the
client sends inputs and event data JSON-encoded twice; and the Counter entity signalled, read
and deleted. Exits non-zero at the first check that fails.

    drive.py --base-url http://127.0.0.1:7071/api/ --task-hub HUB
"""

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timedelta, timezone

import azure.durable_functions as df
from azure.durable_functions.models.OrchestrationRuntimeStatus import (
    OrchestrationRuntimeStatus as Status,
)

DEADLINE_SECONDS = 60


def binding(base_url: str, hub: str) -> str:
    """The durableClient binding JSON the Functions host hands a function."""
    query = f"taskHub={hub}&connection=Storage"
    instance = f"{base_url}instances/INSTANCEID"
    return json.dumps(
        {
            "taskHubName": hub,
            "creationUrls": {
                "createNewInstancePostUri": f"{base_url}orchestrators/{{functionName}}[/{{instanceId}}]?{query}",
                "createAndWaitOnNewInstancePostUri": f"{base_url}orchestrators/{{functionName}}[/{{instanceId}}]?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{query}",
            },
            "managementUrls": {
                "id": "INSTANCEID",
                "statusQueryGetUri": f"{instance}?{query}",
                "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
                "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
                "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
                "purgeHistoryDeleteUri": f"{instance}?{query}",
                "restartPostUri": f"{instance}/restart?{query}",
                "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
                "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
            },
            "baseUrl": base_url.rstrip("/"),
            "requiredQueryStringParameters": query,
            "rpcBaseUrl": base_url,
        }
    )


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


async def wait_for(client, instance_id: str, done, **options):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        status = await client.get_status(instance_id, **options)
        if status and done(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{instance_id} did not get there: {vars(status)}")
        await asyncio.sleep(0.2)


async def wait_for_entity(client, entity, done):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        state = await client.read_entity_state(entity)
        if done(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{entity} did not get there: {vars(state)}")
        await asyncio.sleep(0.2)


def history_types(status) -> list:
    return [event["EventType"] for event in getattr(status, "historyEvents", None) or []]


def claim(claim_id: str) -> dict:
    return {
        "ClaimId": claim_id,
        "Claimant": "Ann Lee",
        "Amount": 1234.5,
        "Description": "Water damage",
    }


async def start_claim(client, instance_id: str) -> dict:
    """Starts a claim with the client and waits until it waits for its decision."""
    sent = claim(instance_id.upper())
    started = await client.start_new("ClaimApprovalWorkflow", instance_id, sent)
    check(started == instance_id, f"{instance_id} started with a claim dict")
    await wait_for(
        client, instance_id, lambda s: s.custom_status == {"Stage": "AwaitingApproval"}
    )
    return sent


async def drive(base_url: str, hub: str) -> None:
    client = df.DurableOrchestrationClient(binding(base_url, hub))
    since = datetime.now(timezone.utc) - timedelta(minutes=5)

    # Start, with and without an id, and read the status.
    started = await client.start_new("HelloSequence5", "py-hello-1", {"From": "python"})
    check(started == "py-hello-1", "start_new with an instance id returns it")
    generated = await client.start_new("HelloSequence5")
    check(len(generated) == 32, "start_new without an id gets a generated one")
    done = await wait_for(client, "py-hello-1", lambda s: s.runtime_status == Status.Completed)
    check(done.output[0] == "Hello Tokyo!" and len(done.output) == 5, "the output comes back")
    check(done.name == "HelloSequence5" and done.instance_id == "py-hello-1", "name and id")
    check(
        done.input_ == json.dumps({"From": "python"}),
        "the input is what the client sent (it encodes it to a JSON string first)",
    )
    detailed = await client.get_status("py-hello-1", show_history=True, show_history_output=True)
    types = history_types(detailed)
    check(types[0] == "ExecutionStarted" and types[-1] == "ExecutionCompleted", "history ends")
    check(types.count("TaskCompleted") == 5, "history folds each activity into one row")
    check(not await client.get_status("py-nobody"), "an unknown instance has no status")
    await wait_for(client, generated, lambda s: s.runtime_status == Status.Completed)

    # A typed orchestrator: the claim and the decision arrive as JSON strings holding JSON,
    # which the orchestrator decodes as that JSON (as the Python orchestrator SDK does).
    sent = await start_claim(client, "py-claim-1")
    waiting = await client.get_status("py-claim-1")
    check(waiting.runtime_status == Status.Running, "the claim is running")
    check(
        waiting.input_ == json.dumps(sent) and json.loads(waiting.input_) == sent,
        "get_status shows the claim as sent (a JSON string, as against the extension)",
    )
    await client.raise_event(
        "py-claim-1", "ApprovalDecision", {"Approved": True, "Approver": "py", "Comment": "ok"}
    )
    approved = await wait_for(
        client, "py-claim-1", lambda s: s.runtime_status == Status.Completed
    )
    check(
        approved.output == {"ClaimId": "PY-CLAIM-1", "Status": "Approved", "Approver": "py"},
        "the raised decision settles the claim",
    )
    check(approved.custom_status == {"Stage": "Approved"}, "custom status is JSON")

    # Suspend a waiting claim, raise an event into it, resume it.
    await start_claim(client, "py-claim-2")
    await client.suspend("py-claim-2", "audit")
    await wait_for(client, "py-claim-2", lambda s: s.runtime_status == Status.Suspended)
    decision = {"Approved": False, "Approver": "py", "Comment": "no cover"}
    await client.raise_event("py-claim-2", "ApprovalDecision", decision)
    held = await wait_for(
        client, "py-claim-2", lambda s: "EventRaised" in history_types(s), show_history=True
    )
    check(held.runtime_status == Status.Suspended, "the event is recorded and held")
    await client.resume("py-claim-2", "carry on")
    rejected = await wait_for(
        client, "py-claim-2", lambda s: s.runtime_status == Status.Completed
    )
    check(
        rejected.output
        == {"ClaimId": "PY-CLAIM-2", "Status": "Rejected", "Approver": "py", "Reason": "no cover"},
        "the held decision is applied after resume",
    )

    # Terminate a waiting claim.
    await start_claim(client, "py-claim-3")
    await client.terminate("py-claim-3", "stop")
    ended = await wait_for(client, "py-claim-3", lambda s: s.runtime_status == Status.Terminated)
    check(ended.output == "stop", "the terminate reason is the output")
    try:
        await client.raise_event("py-claim-3", "ApprovalDecision", {"Approved": True})
        check(False, "an ended instance refuses events")
    except Exception as error:  # the client raises a bare Exception for 410
        check("gone" in str(error), "an ended instance refuses events (410)")

    # Restart under a new id.
    restarted = await client.restart("py-hello-1")
    new_id = restarted["id"]
    check(new_id != "py-hello-1", "restart uses a new id by default")
    await wait_for(client, new_id, lambda s: s.runtime_status == Status.Completed)

    # Query by status and prefix.
    completed = await client.get_status_by(
        runtime_status=[Status.Completed], instance_id_prefix="py-"
    )
    check(
        sorted(s.instance_id for s in completed) == ["py-claim-1", "py-claim-2", "py-hello-1"],
        "by status and prefix",
    )
    terminated = await client.get_status_by(runtime_status=[Status.Terminated])
    check([s.instance_id for s in terminated] == ["py-claim-3"], "by status")
    by_prefix = await client.get_status_by(instance_id_prefix="py-")
    check(len(by_prefix) == 4, "by prefix")
    everything = await client.get_status_all()
    check(len(everything) == 6, "all instances")
    in_range = await client.get_status_by(created_time_from=since)
    check(len(in_range) == 6, "by creation time")

    # Purge one, then by filter.
    purged = await client.purge_instance_history("py-hello-1")
    check(purged.instances_deleted == 1, "purge one")
    check(not await client.get_status("py-hello-1"), "a purged instance is gone")
    again = await client.purge_instance_history("py-hello-1")
    check(again.instances_deleted == 0, "purging it again deletes nothing")
    by_filter = await client.purge_instance_history_by(
        created_time_from=since, runtime_status=[Status.Completed, Status.Terminated]
    )
    check(by_filter.instances_deleted == 5, "purge by filter")
    check(await client.get_status_all() == [], "nothing is left")

    # Entities: the client signals the seed app's Counter (inputs JSON-encoded twice, as for
    # orchestrations), reads its state, and deletes it.
    counter = df.EntityId("Counter", "py-1")
    await client.signal_entity(counter, "add", 5)
    await client.signal_entity(counter, "add", 7)
    total = await wait_for_entity(client, counter, lambda r: r.entity_exists and r.entity_state == 12)
    check(total.entity_state == 12, "signalled operations apply once each, in order")
    missing = await client.read_entity_state(df.EntityId("Counter", "py-never"))
    check(not missing.entity_exists, "an entity never signalled has no state")
    await client.signal_entity(counter, "delete")
    await wait_for_entity(client, counter, lambda r: not r.entity_exists)
    check(True, "a deleted entity has no state")
    try:
        await client.signal_entity(df.EntityId("Nobody", "k"), "add", 1)
        check(False, "a signal to an entity no function handles is refused")
    except Exception as error:  # the client raises a bare Exception for anything but 202
        check("404" in str(error), "a signal to an entity no function handles is refused (404)")
    print("all checks passed", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--task-hub", required=True)
    args = parser.parse_args()
    asyncio.run(drive(args.base_url, args.task_hub))
    return 0


if __name__ == "__main__":
    sys.exit(main())
