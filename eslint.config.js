// The layer rules of STYLE.md ("Enforced, not hoped for") as lint rules: `npm run lint`, which
// `bash scripts/test` runs first. Every exception names its file and says why. Import cycles
// are checked beside this, by scripts/check-cycles.mjs (type-only imports count there).
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

const CP = "apps/control-plane/src";
const AGENT = "apps/agent/src";

/** Sources of every package; tests and test kits are exempt from the library layers (below). */
const SOURCES = ["apps/*/src/**/*.ts", "apps/*/src/**/*.tsx", "packages/*/src/**/*.ts"];
/**
 * Integration and end-to-end tests use the real dependencies directly, to set
 * up and to observe what the code under test did (a container's state, a row):
 * the library layers do not apply to them. Entry points and cycles still do.
 */
const TESTS = ["**/*.test.ts", "**/*.testkit.ts", "test/src/**"];

/**
 * One layer: which imports it guards and where they may appear. Each layer is
 * its own rule (`layers/<name>`, the typescript-eslint no-restricted-imports
 * rule under another name), so the layers' file lists do not override each
 * other as one rule's options would.
 */
const LAYERS = [
  {
    name: "database",
    modules: ["kysely", "pg", "pg-pool", "@electric-sql/pglite", "kysely-pglite-dialect"],
    message: "database access only in the control plane's repositories (repositories/, data/*.repository.ts, metrics/*.repository.ts) and db/ (connection, schema, migrations)",
    allowed: [
      `${CP}/repositories/**`,
      `${CP}/db/**`,
      `${CP}/data/*.repository.ts`,
      `${CP}/metrics/*.repository.ts`,
      // Creates and drops the environments' own databases and roles on the server (CREATE DATABASE,
      // CREATE ROLE): administration of a PostgreSQL server, not the control plane's data.
      `${CP}/data/provisioner.ts`,
      // The test harness clones a migrated template database per suite (CREATE DATABASE … TEMPLATE).
      `${CP}/testing/**`,
    ],
  },
  {
    name: "docker",
    modules: ["dockerode", "tar-fs", "docker-modem"],
    message: "Docker access only in the agent's docker/ adapter; elsewhere use its ContainerRuntime interface",
    allowed: [`${AGENT}/docker/**`],
  },
  {
    name: "http-server",
    modules: ["fastify", "@fastify/*"],
    message: "fastify only in the control plane's routes/ and the app builder (app.ts); services know nothing of HTTP",
    allowed: [`${CP}/routes/**`, `${CP}/app.ts`],
    // The composition root and the test harness hold the app buildApp returns (to listen, to inject()): types only.
    typesOnly: [`${CP}/control-plane.ts`, `${CP}/testing/**`],
  },
  {
    name: "nats",
    modules: ["@nats-io/*", "nats"],
    message: "NATS only in its adapters: the control plane's bus/, the agent's nats/ (connections, its nkey), jobs/job-consumer.ts and logs/ (runtime log and shell transport)",
    allowed: [`${CP}/bus/**`, `${AGENT}/nats/**`, `${AGENT}/jobs/job-consumer.ts`, `${AGENT}/logs/**`],
  },
  {
    name: "grpc",
    modules: ["@grpc/*"],
    message: "gRPC only in its adapters: the control plane's grpc/, the agent's report/, and packages/proto",
    allowed: [`${CP}/grpc/**`, `${AGENT}/report/**`, "packages/proto/**"],
    // The control plane's composition root starts and stops the gRPC server grpc/ builds: types only.
    typesOnly: [`${CP}/control-plane.ts`],
  },
  {
    name: "core-is-pure",
    modules: [
      "pg", "kysely", "@electric-sql/*", "@nats-io/*", "nats", "dockerode", "tar-fs", "@grpc/*",
      "fastify", "@fastify/*", "@aws-sdk/*", "@slipway/*",
      "net", "node:net", "http", "node:http", "https", "node:https", "http2", "node:http2", "dgram", "node:dgram",
    ],
    message: "packages/core is pure (domain types, transitions, names, schemas): no I/O libraries, no network, no other @slipway package",
    files: ["packages/core/src/**/*.ts"],
  },
];

const layersPlugin = {
  rules: Object.fromEntries(LAYERS.map((l) => [l.name, tseslint.plugin.rules["no-restricted-imports"]])),
};

/** `@nats-io/*` → a regex of the package and its subpaths; never matches a relative import. */
function packagesRegex(modules) {
  const names = modules.map((m) => m.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]+"));
  return `^(${names.join("|")})(/.*)?$`;
}

function layerRule(layer, allowTypeImports) {
  return [
    "error",
    { patterns: [{ regex: packagesRegex(layer.modules), message: `${layer.message}.`, ...(allowTypeImports ? { allowTypeImports: true } : {}) }] },
  ];
}

const layerConfigs = LAYERS.flatMap((layer) => [
  {
    name: `layers/${layer.name}`,
    files: layer.files ?? SOURCES,
    ignores: [...TESTS, ...(layer.allowed ?? []), ...(layer.typesOnly ?? [])],
    plugins: { layers: layersPlugin },
    rules: { [`layers/${layer.name}`]: layerRule(layer, false) },
  },
  ...(layer.typesOnly
    ? [{ name: `layers/${layer.name}/types-only`, files: layer.typesOnly, ignores: TESTS, plugins: { layers: layersPlugin }, rules: { [`layers/${layer.name}`]: layerRule(layer, true) } }]
    : []),
]);

export default defineConfig(
  {
    ignores: ["**/node_modules/**", "**/dist/**", "packages/proto/src/gen/**", ".slipway/**", ".turbo/**", "coverage/**"],
  },
  // Linting is about the layers; of typescript-eslint only the recommended set, without type information (fast).
  // .tsx: the web dashboard's components (apps/web).
  ...tseslint.configs.recommended.map((c) => ({ ...c, files: ["**/*.ts", "**/*.tsx"] })),
  {
    name: "slipway/typescript",
    files: ["**/*.ts", "**/*.tsx"],
    rules: {
      // Migrations are Kysely<any> on purpose (frozen in time, STYLE.md); the CLI and tests read API answers untyped.
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      // A timer handle declared before the closure that clears it and assigned later cannot be const.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
    },
  },
  ...layerConfigs,
  {
    // Packages meet only at their entry points (package.json "exports"), never in each other's sources or builds.
    name: "layers/entry-points",
    files: ["**/*.ts", "**/*.tsx", "**/*.js", "**/*.mjs"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["@slipway/*/src", "@slipway/*/src/**", "@slipway/*/dist", "@slipway/*/dist/**"], message: "import a package by its name (its entry point), not its files." },
            { regex: "^(\\.\\./)+(.+/)?(src|dist)(/|$)", message: "this path climbs into another package's files: import the package by its name (its entry point)." },
          ],
        },
      ],
    },
  },
  {
    // Query building is the repositories' job: services, routes and the rest call repository functions.
    name: "layers/queries-in-repositories",
    files: [`${CP}/**/*.ts`],
    ignores: [
      ...TESTS,
      `${CP}/repositories/**`,
      `${CP}/db/**`,
      `${CP}/data/*.repository.ts`,
      `${CP}/metrics/*.repository.ts`,
      // Test fixtures write rows directly, as if earlier operations had happened.
      `${CP}/testing/**`,
    ],
    rules: {
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.property.name=/^(selectFrom|selectNoFrom|updateTable|insertInto|deleteFrom|replaceInto|mergeInto)$/]",
          message: "query building (selectFrom, insertInto, updateTable, deleteFrom …) only in repositories/*.repository.ts: add a repository function.",
        },
        { selector: "TaggedTemplateExpression[tag.name='sql'], TaggedTemplateExpression[tag.object.name='sql']", message: "sql`…` only in repositories/*.repository.ts and migrations: add a repository function." },
        { selector: "CallExpression[callee.object.name='sql']", message: "sql.raw/sql.ref/… only in repositories/*.repository.ts and migrations: add a repository function." },
      ],
    },
  },
  {
    // One writer of lifecycle state (issue 10): only the lifecycle module may call the statements that
    // write environment, deployment and job states and placements.
    name: "layers/one-lifecycle-writer",
    files: [`${CP}/**/*.ts`],
    ignores: [...TESTS, `${CP}/services/lifecycle.service.ts`, `${CP}/repositories/lifecycle.repository.ts`],
    // Its own rule name, so it does not replace the options of the no-restricted-imports rules above.
    plugins: { lifecycle: { rules: { "one-writer": tseslint.plugin.rules["no-restricted-imports"] } } },
    rules: {
      "lifecycle/one-writer": [
        "error",
        { patterns: [{ regex: "(^|/)lifecycle\\.repository(\\.js)?$", message: "lifecycle state (environment, deployment and job states, placement) is written only by services/lifecycle.service.ts: call the Lifecycle." }] },
      ],
    },
  },
);
