// kivitendo's RemoveInvalidFileEntries (spec jobs.md, destructive): deletes every `files` row whose
// content its storage backend cannot deliver, collecting the errors in data.file_errors. The job
// row's data is saved at the start (status 1), after every error and at the end (status 2).
import path from 'node:path';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { t8For, type Translator } from './tierb/t8';
import { JobError, type JobContext, type JobPackage } from './types';
import { VERSION } from '../version';
import { isDir, isFile } from '../fsutil';
import { RELEASES_4_1 } from './releases';

const NAME = 'RemoveInvalidFileEntries';
const SCAN_START = 1;
const DONE = 2;

interface FileRow {
  id: number;
  file_name: string;
  backend: string;
}

/** File::Spec::Unix::canonpath: no doubled slashes, no `./` segments, no trailing slash. */
function canonpath(p: string): string {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  return p.startsWith('/') ? '/' + parts.join('/') : parts.join('/') || '.';
}

/** SL::File::Object::get_file: the error kivitendo's backend dies with, or undefined if the file is there. */
async function fileError(ctx: JobContext, file: FileRow, docFiles: boolean, docWebdav: boolean, t8: Translator): Promise<string | undefined> {
  if (file.backend === 'Webdav') {
    // Only reached with the Webdav backend disabled (checked before the scan).
    return docWebdav ? undefined : t8('backend "#1" not enabled', 'Webdav');
  }
  if (file.backend !== 'Filesystem') return t8('backend "#1" not found', file.backend);
  const documentPath = ctx.config.sections['paths']?.['document_path'] ?? '';
  if (!docFiles || !documentPath || !isDir(path.resolve(ctx.kivitendoDir, documentPath))) {
    return t8('backend "#1" not enabled', 'Filesystem');
  }
  const v = await ctx.db.query<{ version: number }>('SELECT version FROM file_versions WHERE file_id = $1 ORDER BY version DESC LIMIT 1', [file.id]);
  if (v.rows.length === 0) return `Could not find a file version for file with id ${file.id}`;
  // <document_path>/<client id>/<id mod 1000, 4 digits>/<id>/<id>_<version>, relative to ROOT.
  const rel = canonpath(
    [documentPath, String(ctx.client.id), String(file.id % 1000).padStart(4, '0'), String(file.id), `${file.id}_${v.rows[0].version}`].join('/'),
  );
  if (!isFile(path.resolve(ctx.kivitendoDir, rel))) return `No file found at ${rel}. Expected: ${file.file_name}, file.id: ${file.id}`;
  return undefined;
}

export const RemoveInvalidFileEntries: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_1,
  async run(ctx) {
    readDataOptions(ctx.data, { status: 'int', file_errors: 'list' }, NAME, warnUnknownKeys(ctx));
    const t8 = t8For(ctx);
    const defaults = await ctx.db.query<{ doc_files: boolean | null; doc_webdav: boolean | null }>('SELECT doc_files, doc_webdav FROM defaults LIMIT 1');
    const docFiles = !!defaults.rows[0]?.doc_files;
    const docWebdav = !!defaults.rows[0]?.doc_webdav;

    const files = await ctx.db.query<FileRow>('SELECT id, file_name, backend::text AS backend FROM files ORDER BY id');
    // Webdav paths depend on record numbers this server does not compute; deleting rows it cannot
    // check would destroy valid entries, so such a client is refused before anything is touched.
    if (docWebdav && files.rows.some((f) => f.backend === 'Webdav')) {
      throw new JobError(`${NAME}: files in the Webdav storage backend are not supported by kivitendo-task-server ${VERSION}; nothing was deleted`);
    }

    ctx.data.status = SCAN_START;
    await ctx.saveData();

    for (const file of files.rows) {
      if (ctx.signal.aborted) throw new JobError(`${NAME}: aborted`);
      const error = await fileError(ctx, file, docFiles, docWebdav, t8);
      if (error === undefined) continue;
      const list = Array.isArray(ctx.data.file_errors) ? (ctx.data.file_errors as unknown[]) : [];
      list.push(error);
      ctx.data.file_errors = list;
      await ctx.saveData();
      await ctx.db.query('DELETE FROM files WHERE id = $1', [file.id]);
    }

    ctx.data.status = DONE;
    await ctx.saveData();
    return 1;
  },
};
