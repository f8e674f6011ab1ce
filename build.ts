// npm run build: bundle src/main.ts with esbuild, then turn it into a Node single executable (SEA).
//   dist/kivitendo-task-server.js   the bundle (runs with any `node` >= 20)
//   dist/kivitendo-task-server      node + the bundle as one executable (needs nothing else)
// In a SEA only built-in modules can be require()d, so everything else must be in the bundle.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const root = __dirname;
const dist = path.join(root, 'dist');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
const bundle = path.join(dist, 'kivitendo-task-server.js');
const binary = path.join(dist, 'kivitendo-task-server');
const blob = path.join(dist, 'sea-prep.blob');
const seaConfig = path.join(dist, 'sea-config.json');

async function main() {
  const t0 = Date.now();
  fs.mkdirSync(dist, { recursive: true });
  const result = await build({
    entryPoints: [path.join(root, 'src', 'main.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['pg-native'],
    define: { __KTS_VERSION__: JSON.stringify(pkg.version), __KTS_PERL_FILES__: JSON.stringify(perlFiles()) },
    legalComments: 'none',
    minifySyntax: true,
    logLevel: 'warning',
    metafile: true,
  });
  const inputs = Object.keys(result.metafile.inputs).length;
  process.stdout.write(`bundle: ${path.relative(root, bundle)} (${inputs} modules, ${kb(bundle)})\n`);

  fs.writeFileSync(
    seaConfig,
    JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache: true }, null, 2),
  );
  quiet(process.execPath, ['--experimental-sea-config', seaConfig]);
  fs.rmSync(binary, { force: true });
  fs.copyFileSync(process.execPath, binary);
  fs.chmodSync(binary, 0o755);
  const postject = path.join(root, 'node_modules', 'postject', 'dist', 'cli.js');
  quiet(process.execPath, [postject, binary, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2']);
  fs.rmSync(blob, { force: true });
  const check = execFileSync(binary, ['version'], { encoding: 'utf8' }).trim();
  process.stdout.write(`binary: ${path.relative(root, binary)} (${kb(binary)}) → ${check}  [${Date.now() - t0} ms]\n`);
}

/**
 * The Perl files the daemon hands to kivitendo's perl (src/jobs/perl/*.pl and actions/*.pl), by
 * path relative to src/jobs/perl: the product stays one file.
 */
function perlFiles(): Record<string, string> {
  const dir = path.join(root, 'src', 'jobs', 'perl');
  const files: Record<string, string> = {};
  for (const sub of ['', 'actions']) {
    const d = path.join(dir, sub);
    if (!fs.existsSync(d)) continue;
    for (const f of fs.readdirSync(d).filter((n) => n.endsWith('.pl')).sort()) {
      files[sub ? `${sub}/${f}` : f] = fs.readFileSync(path.join(d, f), 'utf8');
    }
  }
  if (!files['kivitendo-child.pl']) throw new Error('src/jobs/perl/kivitendo-child.pl is missing');
  return files;
}

/** Runs a build step; shows its output only when it fails (postject's LIEF prints harmless warnings). */
function quiet(file: string, args: string[]) {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(r.stdout + r.stderr);
    throw new Error(`${path.basename(args[0])} failed (exit ${r.status})`);
  }
}

function kb(file: string) {
  const size = fs.statSync(file).size;
  return size > 1024 * 1024 ? `${(size / 1024 / 1024).toFixed(1)} MiB` : `${(size / 1024).toFixed(0)} KiB`;
}

main().catch((e) => {
  process.stderr.write(`build failed: ${e instanceof Error ? e.message : e}\n`);
  process.exit(1);
});
