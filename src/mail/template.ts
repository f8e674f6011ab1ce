// The mail bodies of the task server and its jobs are Template Toolkit 2 files that administrators
// may customise, so they are rendered with a TT2 subset (tt/): IF/ELSIF/ELSE/UNLESS/END, FOREACH with
// `loop`, SET/DEFAULT, dotted access with functions called like TT calls methods, virtual methods
// (`.size`, `.keys.sort`, `.join`, …), `$var` keys, chomp flags, filters (`| html`), USE HTML/T8.
// Everything else (PERL, MACRO, INCLUDE, …) is a TemplateError naming the file and line.
import fs from 'node:fs';
import path from 'node:path';
import { Evaluator, EvalOptions } from './tt/evaluate';
import { TTError } from './tt/lexer';
import { parseTemplate } from './tt/parser';

export type { EvalOptions as RenderOptions } from './tt/evaluate';

export class TemplateError extends Error {
  constructor(readonly file: string, readonly line: number, message: string) {
    super(`template ${file} line ${line}: ${message}`);
    this.name = 'TemplateError';
  }
}

/** Resolves a template path like kivitendo (relative to ROOT, absolute paths allowed). */
export function resolveTemplatePath(kivitendoDir: string, file: string): string {
  return path.resolve(kivitendoDir, file);
}

/** Renders a TT2 file (absolute, or relative to kivitendoDir) with vars. Throws TemplateError. */
export function renderTemplateFile(
  kivitendoDir: string,
  file: string,
  vars: Record<string, unknown>,
  options?: EvalOptions,
): string {
  let source: string;
  try {
    source = fs.readFileSync(resolveTemplatePath(kivitendoDir, file), 'utf8');
  } catch (e) {
    throw new TemplateError(file, 0, `cannot read template: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return renderTemplate(source.replace(/^\uFEFF/, ''), vars, file, options);
}

/**
 * Renders TT2 source text; `name` is used in error messages. `vars` is copied shallowly, so SET and
 * FOREACH variables do not leak into the caller's object (nested objects are shared, as in TT).
 */
export function renderTemplate(
  source: string,
  vars: Record<string, unknown>,
  name = '<string>',
  options?: EvalOptions,
): string {
  try {
    return new Evaluator({ ...vars }, options).render(parseTemplate(source));
  } catch (e) {
    if (e instanceof TTError) throw new TemplateError(name, e.line, e.message);
    throw e;
  }
}
