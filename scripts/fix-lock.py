# Kept in the repo: run it after any change that rewrites package-lock.json (npm install).
# Adds the lock entries of chdb's optional platform libraries that the registry mirror here
# does not serve (npm ci refuses a lock without them). Usage: python3 fix-lock.py package-lock.json
import json, sys
p = sys.argv[1]
d = json.load(open(p))
pk = d['packages']
ver = pk['node_modules/chdb']['optionalDependencies']
for name, cpu, os_, libc in [('@chdb/lib-darwin-arm64', 'arm64', 'darwin', None), ('@chdb/lib-darwin-x64', 'x64', 'darwin', None), ('@chdb/lib-linux-arm64-gnu', 'arm64', 'linux', 'glibc')]:
    key = 'node_modules/' + name
    if key in pk: continue
    e = {"version": ver[name], "cpu": [cpu], "license": "Apache-2.0", "optional": True, "os": [os_]}
    if libc: e["libc"] = [libc]
    pk[key] = e
d['packages'] = dict(sorted(pk.items(), key=lambda kv: (kv[0] != '', kv[0])))
with open(p, 'w') as f:
    json.dump(d, f, indent=2); f.write('\n')
