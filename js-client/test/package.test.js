// The npm package is what a user installs: `npm pack` holds the module, its
// declarations (fresh from the JSDoc) and the README, nothing of the tests, and
// a TypeScript program type-checks against the packed declarations.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const HERE = fileURLToPath(new URL("..", import.meta.url));
const TSC = join(HERE, "node_modules", "typescript", "bin", "tsc");
const tmp = mkdtempSync(join(tmpdir(), "wshub-client-pack-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * @param {string} command
 * @param {string[]} args
 * @param {string} cwd
 */
function run(command, args, cwd) {
  try {
    return execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = /** @type {{stdout?: string, stderr?: string, message: string}} */ (err);
    throw new Error(`${command} ${args.join(" ")} failed: ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}

describe("the npm package", () => {
  it("packs the module, its declarations, README and package.json, and nothing of the tests", () => {
    const [pack] = JSON.parse(run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], HERE));
    const files = pack.files.map((/** @type {{path: string}} */ f) => f.path).sort();
    const expected = ["README.md", "package.json", "wshub.d.ts", "wshub.js"];
    if (existsSync(join(HERE, "LICENSE"))) expected.unshift("LICENSE");
    assert.deepEqual(files, expected.sort());
    assert.ok(!files.some((/** @type {string} */ f) => /^(test|e2e|node_modules)\//.test(f)));
  });

  it("declares its entry point, types and module kind in package.json", () => {
    const pkg = JSON.parse(readFileSync(join(HERE, "package.json"), "utf8"));
    assert.equal(pkg.type, "module");
    assert.equal(pkg.types, "./wshub.d.ts");
    assert.deepEqual(pkg.exports["."], { types: "./wshub.d.ts", default: "./wshub.js" });
  });

  it("ships declarations that match what tsc generates from the JSDoc now", () => {
    const out = join(tmp, "types");
    run(process.execPath, [TSC, "-p", "tsconfig.types.json", "--outDir", out], HERE);
    assert.equal(
      readFileSync(join(HERE, "wshub.d.ts"), "utf8"),
      readFileSync(join(out, "wshub.d.ts"), "utf8"),
      "js-client/wshub.d.ts is stale: run `npm run types` in js-client/ and commit it",
    );
  });

  it("type-checks a TypeScript consumer against the packed declarations", () => {
    const dest = join(tmp, "tarball");
    mkdirSync(dest);
    const [pack] = JSON.parse(run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", dest], HERE));
    const consumer = join(tmp, "consumer");
    const installed = join(consumer, "node_modules", "wshub-client");
    mkdirSync(installed, { recursive: true });
    run("tar", ["-xzf", join(dest, pack.filename), "-C", installed, "--strip-components=1"], consumer);
    writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "consumer", type: "module", private: true }));
    writeFileSync(
      join(consumer, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: "es2022",
          module: "nodenext",
          moduleResolution: "nodenext",
          lib: ["dom", "es2022"],
          types: [],
        },
        include: ["app.ts"],
      }),
    );
    writeFileSync(
      join(consumer, "app.ts"),
      `import { WsHub, WsHubError, backoff, type StateEvent } from "wshub-client";

const hub = new WsHub("ws://127.0.0.1:8765/", { callTimeout: 5000 });
hub.on("state", (event: StateEvent) => console.log(event.state));
const sum: number = await hub.call<number>("math.add", [1, 2]);
const sub = hub.subscribe("chat/lobby", { presence: true, info: { name: "Ada" } });
sub.on("message", ({ channel, offset }) => console.log(channel, offset + sum));
const delay: number = backoff(3, { min: 500, max: 20000 });
try {
  await hub.publish("chat/lobby", { text: "hi" });
} catch (err) {
  if (err instanceof WsHubError) console.log(err.code, delay);
}
// The declarations are real types, not any: each misuse below must be an error.
// @ts-expect-error the URL is a string
new WsHub(42);
const untyped = await hub.call("math.add", [1, 2]);
// @ts-expect-error a call result is unknown unless typed
untyped.toFixed();
// @ts-expect-error no such option
hub.subscribe("chat/lobby", { presense: true });
`,
    );
    run(process.execPath, [TSC, "-p", "tsconfig.json"], consumer);
  });
});
