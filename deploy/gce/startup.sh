#!/bin/bash
# startup.sh — Compute Engine startup script for `tributary stream` VMs
# (Debian 12 image; run by the guest agent as root at every boot, so every
# step is idempotent).
#
# Reads instance metadata (set by deploy/terraform/gce.tf or the gcloud
# commands in deploy/README.md):
#   tributary-binary-url     gs:// URL of the opt binary (required)
#   tributary-binary-sha256  its SHA-256, checked when set
#   tributary-pipeline-name  pipeline (and systemd instance) name (required)
#   tributary-pipeline       the pipeline JSON file (required)
#   tributary-stream-unit    deploy/gce/tributary-stream@.service (required)
#   tributary-env            extra KEY=VALUE lines for the unit's env file
#   tributary-ops-agent      "true": install the Ops Agent and ship the
#                            journal + scrape /metrics (Prometheus)
#
# Disks: the device named "tributary-wal" (a persistent disk) is formatted
# once (ext4) and mounted at /var/lib/tributary: the WAL survives process
# crashes, reboots and — with a stateful MIG — VM recreation.
set -euo pipefail

md() {
  curl -fsS -H 'Metadata-Flavor: Google' \
    "http://metadata.google.internal/computeMetadata/v1/$1" 2>/dev/null || true
}
attr() { md "instance/attributes/$1"; }
log() { echo "tributary-startup: $*"; }

name=$(attr tributary-pipeline-name)
url=$(attr tributary-binary-url)
if [ -z "$name" ] || [ -z "$url" ]; then
  log "metadata tributary-pipeline-name / tributary-binary-url missing"; exit 1
fi
case "$name" in *[!A-Za-z0-9_.-]*) log "bad pipeline name '$name'"; exit 1 ;; esac

# 1. WAL disk.
dev=/dev/disk/by-id/google-tributary-wal
for _ in $(seq 1 30); do [ -e "$dev" ] && break; sleep 1; done
if [ -e "$dev" ]; then
  blkid "$dev" >/dev/null 2>&1 || mkfs.ext4 -q -m 0 -L tributary-wal -E lazy_itable_init=0,discard "$dev"
  mkdir -p /var/lib/tributary
  grep -q ' /var/lib/tributary ' /etc/fstab ||
    echo "LABEL=tributary-wal /var/lib/tributary ext4 defaults,nofail,discard 0 2" >>/etc/fstab
  mountpoint -q /var/lib/tributary || mount /var/lib/tributary
else
  log "no tributary-wal disk: the WAL is on the boot disk"
fi

# 2. User and runtime libraries (the same set as deploy/Dockerfile's runtime).
getent group tributary >/dev/null || groupadd --system tributary
getent passwd tributary >/dev/null ||
  useradd --system --gid tributary --home-dir /var/lib/tributary --shell /usr/sbin/nologin tributary
chown tributary:tributary /var/lib/tributary
libs=(libgrpc29 libhttp-parser2.9 libjansson4 libsqlite3-0 libssl3 ca-certificates)
missing=0
for p in "${libs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing=1
done
if [ $missing -eq 1 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${libs[@]}"
fi

# 3. The binary (replaced only when it changed; a new version is rolled out
#    by a new instance template, see deploy/README.md).
tmp=$(mktemp)
gcloud storage cp --quiet "$url" "$tmp"
want=$(attr tributary-binary-sha256)
if [ -n "$want" ] && [ "$(sha256sum "$tmp" | cut -d' ' -f1)" != "$want" ]; then
  log "$url does not match tributary-binary-sha256"; rm -f "$tmp"; exit 1
fi
if ! cmp -s "$tmp" /usr/local/bin/tributary; then
  install -m 0755 "$tmp" /usr/local/bin/tributary.new
  mv /usr/local/bin/tributary.new /usr/local/bin/tributary
fi
rm -f "$tmp"
if ldd /usr/local/bin/tributary | grep 'not found'; then log "missing libraries"; exit 1; fi

# 4. Pipeline, environment, unit.
install -d -m 0755 /etc/tributary/pipelines
attr tributary-pipeline >"/etc/tributary/pipelines/$name.json"
{
  echo "TRIBUTARY_STREAM_PROJECT=$(md project/project-id)"
  echo "GOOGLE_CLOUD_PROJECT=$(md project/project-id)"
  attr tributary-env
} >"/etc/tributary/$name.env"
attr tributary-stream-unit >/etc/systemd/system/tributary-stream@.service
systemctl daemon-reload
systemctl enable "tributary-stream@$name.service"
systemctl restart "tributary-stream@$name.service"

# 5. Optional: Ops Agent — journal to Cloud Logging, /metrics to Cloud Monitoring.
if [ "$(attr tributary-ops-agent)" = "true" ]; then
  port=$(sed -n 's/.*"http_port"[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p' "/etc/tributary/pipelines/$name.json" | head -1)
  install -d /etc/google-cloud-ops-agent
  cat >/etc/google-cloud-ops-agent/config.yaml <<YAML
logging:
  receivers:
    tributary_journal:
      type: systemd_journald
  service:
    pipelines:
      tributary:
        receivers: [tributary_journal]
metrics:
  receivers:
    tributary_prometheus:
      type: prometheus
      config:
        scrape_configs:
          - job_name: tributary-stream
            scrape_interval: 30s
            metrics_path: /metrics
            static_configs:
              - targets: ["localhost:${port:-9464}"]
  service:
    pipelines:
      tributary:
        receivers: [tributary_prometheus]
YAML
  if ! systemctl list-unit-files google-cloud-ops-agent.service >/dev/null 2>&1; then
    curl -fsSL https://dl.google.com/cloudagents/add-google-cloud-ops-agent-repo.sh | bash -s -- --also-install
  fi
  systemctl restart google-cloud-ops-agent
fi
log "tributary-stream@$name started"
