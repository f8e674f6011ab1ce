// PLACEHOLDER (the mail helper replaces this file): a Template Toolkit 2 subset.
export class TemplateError extends Error {
  constructor(readonly file: string, readonly line: number, message: string) {
    super(`template ${file} line ${line}: ${message}`);
    this.name = 'TemplateError';
  }
}

/** Renders a TT2 file (absolute, or relative to kivitendoDir) with vars. Throws TemplateError. */
export function renderTemplateFile(kivitendoDir: string, file: string, vars: Record<string, unknown>): string {
  void kivitendoDir;
  void vars;
  throw new TemplateError(file, 0, 'Template Toolkit rendering is not implemented yet');
}

/** Renders TT2 source text; `name` is used in error messages. */
export function renderTemplate(source: string, vars: Record<string, unknown>, name = '<string>'): string {
  void source;
  void vars;
  throw new TemplateError(name, 0, 'Template Toolkit rendering is not implemented yet');
}
