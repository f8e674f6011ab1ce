// ROOT, the kivitendo installation directory: --kivitendo-dir, else $KIVITENDO_DIR, else the parent
// of the program's folder when that folder is called `scripts` (as task_server.pl finds it), else
// /var/www/kivitendo-erp. The program's folder is looked up as invoked (argv[0] / the script path,
// symlinks not resolved — so ROOT/scripts/task_server.pl may be a symlink to the binary), then with
// symlinks resolved.
import fs from 'node:fs';
import path from 'node:path';

export const DEFAULT_KIVITENDO_DIR = '/var/www/kivitendo-erp';

export interface RootInputs {
  flag?: string;
  env?: string;
  /** How the program was invoked: argv[0] for a single executable, the script path under node. */
  invokedAs?: string;
  /** The real file of the program (process.execPath for a single executable). */
  realPath?: string;
  cwd: string;
  pathEnv?: string;
}

function absoluteInvocation(invokedAs: string, cwd: string, pathEnv: string | undefined): string | undefined {
  if (invokedAs.includes('/')) return path.resolve(cwd, invokedAs);
  for (const dir of (pathEnv ?? '').split(':')) {
    if (!dir) continue;
    const p = path.resolve(cwd, dir, invokedAs);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

function rootOfProgram(file: string | undefined): string | undefined {
  if (!file) return undefined;
  const dir = path.dirname(file);
  return path.basename(dir) === 'scripts' ? path.dirname(dir) : undefined;
}

export function kivitendoDir(i: RootInputs): string {
  if (i.flag) return path.resolve(i.cwd, i.flag);
  if (i.env) return path.resolve(i.cwd, i.env);
  const invoked = i.invokedAs ? absoluteInvocation(i.invokedAs, i.cwd, i.pathEnv) : undefined;
  let real: string | undefined;
  try {
    real = i.realPath ? fs.realpathSync(i.realPath) : undefined;
  } catch {
    real = i.realPath;
  }
  return rootOfProgram(invoked) ?? rootOfProgram(real) ?? DEFAULT_KIVITENDO_DIR;
}
