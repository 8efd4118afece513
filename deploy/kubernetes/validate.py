#!/usr/bin/env python3
"""Checks deploy/kubernetes/ without a cluster.

1. Every manifest against the Kubernetes API's own schemas, strictly (unknown fields are
   errors), for the oldest and the newest Kubernetes this Job is meant for. The schemas come
   bundled with the `kubernetes-validate` package (pip install kubernetes-validate==1.37.0), so
   nothing is fetched while validating.
2. That the pieces fit together: an Indexed Job whose SHARDS equals its completions, volumes
   that name the ConfigMap and the claim defined here, a request file whose lines are JSON
   objects with unique ids, and an entrypoint that turns JOB_COMPLETION_INDEX into --shard.

Run: python3 deploy/kubernetes/validate.py   (exit status 0 when everything holds)
"""

import json
import pathlib
import sys

import kubernetes_validate
import yaml

HERE = pathlib.Path(__file__).resolve().parent
# backoffLimitPerIndex is on by default from 1.29 (beta) and GA in 1.33.
VERSIONS = ["1.29.0", "1.37.0"]


def main() -> int:
    problems = []
    resources = {}
    for path in sorted(HERE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            for version in VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    problems.append(f"{path.name} (Kubernetes {version}): {error.message} "
                                    f"at {'.'.join(str(p) for p in error.path)}")
                except kubernetes_validate.utils.SchemaNotFoundError as error:
                    problems.append(f"{path.name}: no schema for {error}")
            resources[(doc["kind"], doc["metadata"]["name"])] = doc

    jobs = [doc for (kind, _), doc in resources.items() if kind == "Job"]
    if len(jobs) != 1:
        problems.append(f"expected one Job, found {len(jobs)}")
    for job in jobs:
        spec = job["spec"]
        if spec.get("completionMode") != "Indexed":
            problems.append("the Job must be Indexed (completionMode: Indexed)")
        completions = spec.get("completions")
        if not isinstance(completions, int) or completions < 1:
            problems.append("the Job needs completions >= 1 (the number of shards)")
        if spec.get("parallelism", 1) > (completions or 0):
            problems.append("parallelism above completions leaves pods with nothing to do")
        pod = spec["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if env.get("SHARDS") != str(completions):
            problems.append(f"SHARDS={env.get('SHARDS')} must equal completions={completions}")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        requests_dir = str(pathlib.PurePosixPath(env.get("REQUESTS", "")).parent)
        for mount_path, want in [(requests_dir, "configMap"), (env.get("OUT"), "persistentVolumeClaim")]:
            volume = volumes.get(mounts.get(mount_path, ""), {})
            if want not in volume:
                problems.append(f"{mount_path} must be mounted from a {want}")
        config_map = volumes.get(mounts.get(requests_dir, ""), {}).get("configMap", {}).get("name")
        claim = volumes.get(mounts.get(env.get("OUT"), ""), {}).get(
            "persistentVolumeClaim", {}).get("claimName")
        if ("ConfigMap", config_map) not in resources:
            problems.append(f"the Job mounts ConfigMap {config_map!r}, which is not defined here")
        else:
            text = resources[("ConfigMap", config_map)]["data"].get(
                pathlib.PurePosixPath(env["REQUESTS"]).name, "")
            ids = set()
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    request = json.loads(line)
                except json.JSONDecodeError as error:
                    problems.append(f"request line {number}: {error}")
                    continue
                if request.get("id") in ids or not request.get("id"):
                    problems.append(f"request line {number}: missing or repeated id")
                ids.add(request.get("id"))
            if not ids:
                problems.append("the request ConfigMap holds no requests")
        if ("PersistentVolumeClaim", claim) not in resources:
            problems.append(f"the Job mounts claim {claim!r}, which is not defined here")
        elif "ReadWriteMany" not in resources[("PersistentVolumeClaim", claim)]["spec"]["accessModes"]:
            problems.append("pods on several nodes write the output: the claim must be ReadWriteMany")

    entrypoint = (HERE / "entrypoint.sh").read_text()
    if '--shard "$JOB_COMPLETION_INDEX/$SHARDS"' not in entrypoint:
        problems.append("entrypoint.sh must pass --shard \"$JOB_COMPLETION_INDEX/$SHARDS\"")
    dockerfile = (HERE / "Dockerfile").read_text()
    if "deploy/kubernetes/entrypoint.sh" not in dockerfile or "REFRAIN_ASSETS" not in dockerfile:
        problems.append("the Dockerfile must install entrypoint.sh and point REFRAIN_ASSETS at the assets")

    for problem in problems:
        print(f"deploy/kubernetes: {problem}", file=sys.stderr)
    checked = len(resources)
    print(f"deploy/kubernetes: {checked} manifests checked against Kubernetes "
          f"{' and '.join(VERSIONS)}: {'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
