#!/usr/bin/env bash
# terraform_check.sh — what can be checked of deploy/terraform offline.
#
# 1. `terraform fmt -check`: every file parses as HCL and is formatted.
# 2. The module's variables and locals (everything computed from the example
#    resource, table and pipeline files: topics, subscriptions, dead-letter
#    policies, datasets, tables with partitioning/clustering, the streamer's
#    subscriptions / dead-letter topics / datasets, ports) are evaluated by
#    Terraform itself: they are copied into a provider-free module (locals
#    that name a resource or data source are left out) and applied, and the
#    results compared with what the example files say.
# Not possible offline: `terraform init` / `validate` / `plan` need the
# hashicorp/google provider from registry.terraform.io.
#
# Exit: 0 pass, 1 fail, 77 skipped (terraform missing).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tf="$here/../terraform"
command -v terraform >/dev/null 2>&1 || { echo "terraform_check: SKIPPED: terraform not installed"; exit 77; }
export TF_CLI_CONFIG_FILE=/dev/null TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
fail=0
if terraform fmt -check -recursive "$tf" >/dev/null 2>&1; then
  echo "terraform_check: ok: terraform fmt -check"
else
  echo "terraform_check: FAIL: terraform fmt -check:"; terraform fmt -check -diff -recursive "$tf"; fail=1
fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/m/sub"
# The module lives at deploy/terraform: keep the relative paths to examples/.
python3 - "$tf" "$tmp/m/sub" <<'PY'
import re, sys, os, glob
src, dst = sys.argv[1], sys.argv[2]
def blocks(text, kind):
    out = []
    for m in re.finditer(r'^%s\b[^{\n]*\{' % kind, text, re.M):
        i, depth = m.end(), 1
        while depth:
            c = text[i]; depth += (c == '{') - (c == '}'); i += 1
        out.append(text[m.start():i])
    return out
variables, local_lines = [], []
for f in sorted(glob.glob(os.path.join(src, '*.tf'))):
    t = open(f).read()
    variables += blocks(t, 'variable')
    for b in blocks(t, 'locals'):
        body = b[b.index('{') + 1:b.rindex('}')]
        # split into top-level assignments
        cur, depth = [], 0
        for line in body.splitlines(True):
            if depth == 0 and re.match(r'\s*[a-z_]+\s*=', line) and cur:
                local_lines.append(''.join(cur)); cur = []
            if depth == 0 and not cur and not re.match(r'\s*[a-z_]+\s*=', line):
                continue  # comments / blank lines between assignments
            cur.append(line)
            depth += line.count('{') + line.count('[') + line.count('(') - line.count('}') - line.count(']') - line.count(')')
        if cur: local_lines.append(''.join(cur))
keep = [l for l in local_lines if not re.search(r'\b(data|google_[a-z_]+)\.', l)]
names = [re.match(r'\s*([a-z_]+)', l).group(1) for l in keep]
with open(os.path.join(dst, 'main.tf'), 'w') as o:
    o.write('\n'.join(variables) + '\nlocals {\n' + ''.join(keep) + '}\n')
    o.write('output "all" {\n  value = {\n' + ''.join('    %s = local.%s\n' % (n, n) for n in names) + '  }\n}\n')
PY
# Same relative layout as deploy/terraform (../../examples).
ln -s "$here/../../examples" "$tmp/examples"
mkdir -p "$tmp/deploy" && mv "$tmp/m/sub" "$tmp/deploy/terraform"
cd "$tmp/deploy/terraform" || exit 1
if ! terraform init -backend=false -input=false >init.log 2>&1; then
  echo "terraform_check: FAIL: init of the provider-free module"; cat init.log; exit 1
fi
if ! terraform apply -auto-approve -input=false -no-color \
      -var project=p -var region=europe-west1 -var image=i \
      -var binary_url=gs://bucket/releases/tributary >apply.log 2>&1; then
  echo "terraform_check: FAIL: evaluating the locals"; cat apply.log; exit 1
fi
terraform output -json all >all.json
python3 - all.json "$here/../../examples" <<'PY' || fail=1
import json, sys, glob, os
v = json.load(open(sys.argv[1])); ex = sys.argv[2]
res = json.load(open(os.path.join(ex, 'emulator.json')))
errs = []
def want(cond, msg):
    if not cond: errs.append(msg)
want(sorted(v['topics']) == sorted(res['topics']), 'topics')
want(sorted(v['subscriptions']) == sorted(s['name'] for s in res['subscriptions']), 'subscriptions')
want(sorted(v['dl_subscriptions']) == sorted(s['name'] for s in res['subscriptions'] if 'deadLetterPolicy' in s), 'dead-letter subscriptions')
want(v['dead_letter_topics'] == ['tributary-dead-letter'], 'dead-letter topics')
files = sorted(os.path.basename(f)[:-5] for f in glob.glob(os.path.join(ex, 'tables', '*.json')))
want(sorted(v['tables']) == files, 'tables %s' % sorted(v['tables']))
for k, t in v['tables'].items():
    f = json.load(open(os.path.join(ex, 'tables', k + '.json')))
    want(t['dataset'] + '.' + t['table'] == k, 'dataset/table of ' + k)
    want(t.get('timePartitioning') == f.get('timePartitioning'), 'partitioning of ' + k)
    want(t.get('clustering') == f.get('clustering'), 'clustering of ' + k)
    want(t['schema'] == f['schema'], 'schema of ' + k)
want(sorted(v['datasets']) == sorted({f.split('.')[0] for f in files}), 'datasets')
want(sorted(v['stream_subscriptions']) == ['backend-events-tributary', 'issues-tributary', 'raw-orders-tributary'], 'stream subscriptions %s' % v['stream_subscriptions'])
want(v['stream_dead_letters'] == ['tributary-dead-letter'], 'stream dead letters')
want(sorted(v['stream_datasets']) == ['backend_events', 'tributary'], 'stream datasets %s' % v['stream_datasets'])
want(v['pipeline_port'] == {'backend-events': 9464, 'issues': 9465, 'raw-orders': 9466}, 'ports %s' % v['pipeline_port'])
want(v['binary_bucket'] == 'bucket', 'binary bucket')
want(v['zone'] == 'europe-west1-b', 'zone')
for e in errs: print('terraform_check: FAIL: ' + e)
sys.exit(1 if errs else 0)
PY
[ $fail -eq 0 ] && echo "terraform_check: ok: locals evaluated by terraform match examples/" && echo "terraform_check: PASS"
exit $fail
