// Cuts GitHub's dereferenced OpenAPI description down to the operations trader-deploy calls, for Prism.
//
// Usage: node cut-spec.mjs [OUT]   (default ~/.cache/trader-deploy/github/cut-<version>-<hash of KEEP>.json)
// Reads @octokit/openapi's generated/api.github.com.deref.json from the npm cache that
// testbed/install-deps.sh fills, keeps only the listed paths and methods, drops the top-level
// `webhooks` and `components` (the deref file inlines every $ref), and writes the result only when
// the output is missing. Prints the output path on stdout.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const cache = process.env.TRADER_DEPLOY_CACHE || path.join(os.homedir(), ".cache", "trader-deploy");
const pkgDir = path.join(cache, "npm", "node_modules", "@octokit", "openapi");
const version = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
// path -> methods the action uses. Keep in sync with testbed/github/README.md.
const KEEP = {
  "/repos/{owner}/{repo}": ["get"],
  "/repos/{owner}/{repo}/environments/{environment_name}": ["get"],
  "/repos/{owner}/{repo}/actions/runs/{run_id}": ["get"],
  "/repos/{owner}/{repo}/actions/runs/{run_id}/approvals": ["get"],
  "/repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt_number}/jobs": ["get"],
  "/repos/{owner}/{repo}/compare/{basehead}": ["get"],
  "/repos/{owner}/{repo}/deployments": ["get", "post"],
  "/repos/{owner}/{repo}/deployments/{deployment_id}": ["get"],
  "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses": ["get", "post"],
  "/repos/{owner}/{repo}/issues/{issue_number}/comments": ["get", "post"],
  "/repos/{owner}/{repo}/issues/comments/{comment_id}": ["patch"],
};

// Where GitHub answers what its own description leaves out, the description is amended here, in
// the open (testbed/github/README.md, "Amendments"). `waiting`: the state of the deployment status
// GitHub writes while a job waits for an environment's review. It is in GraphQL's
// DeploymentStatusState (WAITING) and in recorded REST and webhook payloads
// (octokit/webhooks.net#52), not in the REST description's enum. Responses only: a client still
// cannot create a `waiting` status (the request schema keeps its enum, and GitHub answers 422).
const AMEND = {
  "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses": {
    get: { path: ["responses", "200", "content", "application/json", "schema", "items", "properties", "state", "enum"], add: "waiting" },
  },
};

const keepHash = crypto
  .createHash("sha256")
  .update(JSON.stringify(KEEP) + JSON.stringify(AMEND))
  .digest("hex")
  .slice(0, 8);
const out = process.argv[2] || path.join(cache, "github", `cut-${version}-${keepHash}.json`);

if (fs.existsSync(out)) {
  console.log(out);
  process.exit(0);
}
const src = path.join(pkgDir, "generated", "api.github.com.deref.json");
const spec = JSON.parse(fs.readFileSync(src, "utf8"));
const paths = {};
for (const [p, methods] of Object.entries(KEEP)) {
  const item = spec.paths[p];
  if (!item) throw new Error(`path ${p} missing from ${src}`);
  const kept = {};
  if (item.parameters) kept.parameters = item.parameters;
  for (const m of methods) {
    if (!item[m]) throw new Error(`${m.toUpperCase()} ${p} missing from ${src}`);
    kept[m] = item[m];
  }
  paths[p] = kept;
}
for (const [p, byMethod] of Object.entries(AMEND)) {
  for (const [m, { path: keys, add }] of Object.entries(byMethod)) {
    // The deref file shares objects between paths: amend a copy, so only this one changes.
    paths[p][m] = structuredClone(paths[p][m]);
    const list = keys.reduce((o, k) => {
      if (o === undefined || o[k] === undefined) throw new Error(`amend ${m} ${p}: ${keys.join("/")} missing`);
      return o[k];
    }, paths[p][m]);
    if (!Array.isArray(list)) throw new Error(`amend ${m} ${p}: not an enum`);
    if (!list.includes(add)) list.push(add);
  }
}
const cut = { ...spec, paths };
delete cut.webhooks;
delete cut["x-webhooks"];
const leftRefs = JSON.stringify(paths).includes('"$ref"');
if (!leftRefs) delete cut.components;
fs.mkdirSync(path.dirname(out), { recursive: true });
const tmp = `${out}.tmp-${process.pid}`;
fs.writeFileSync(tmp, JSON.stringify(cut));
fs.renameSync(tmp, out);
console.error(`[cut-spec] ${Object.keys(paths).length} paths, ${fs.statSync(out).size} bytes, refs left: ${leftRefs}`);
console.log(out);
