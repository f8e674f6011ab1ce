// kivitendo's CreateOrUpdateFileFullTexts (spec jobs.md): fills file_full_texts for PDF, HTML and
// plain-text files whose text is missing or older than the file. Each row is saved on its own, as
// kivitendo does; a file that cannot be loaded is skipped with a warning.
import path from 'node:path';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { EXTRACTOR_BY_MIME_TYPE, MissingProgramError } from './full-texts/extract';
import { JobError, type JobContext, type JobPackage } from './types';
import { VERSION } from '../version';
import { isDir, isFile } from '../fsutil';
import { isSchemaMismatch } from './schemaErrors';
import { RELEASES_4_0_TO_4_1 } from './releases';

const NAME = 'CreateOrUpdateFileFullTexts';

interface FileRow {
  id: number;
  file_name: string;
  mime_type: string;
  backend: string;
  full_text_id: number | null;
}

/** A file the job could not handle for a reason the admin must fix (reported after the run). */
interface Problem {
  reason: string;
  file: FileRow;
}

export const CreateOrUpdateFileFullTexts: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_0_TO_4_1,
  async run(ctx) {
    readDataOptions(ctx.data, {}, NAME, warnUnknownKeys(ctx));
    const de = ctx.user.settings.countrycode === 'de';

    // A file with several full-text rows is compared with (and updates) the oldest one.
    const files = await ctx.db.query<FileRow>(
      `SELECT f.id, f.file_name, f.mime_type, f.backend::text AS backend, ft.id AS full_text_id
         FROM files f
         LEFT JOIN LATERAL (SELECT t.id, t.itime, t.mtime FROM file_full_texts t WHERE t.file_id = f.id ORDER BY t.id LIMIT 1) ft ON true
        WHERE f.mime_type = ANY($1::text[])
          AND NOT COALESCE(ft.id IS NOT NULL AND COALESCE(f.mtime, f.itime) <= COALESCE(ft.mtime, ft.itime), false)
        ORDER BY f.id`,
      [Object.keys(EXTRACTOR_BY_MIME_TYPE)],
    );
    if (files.rows.length === 0) return 'ok';

    const storage = await loadStorage(ctx);
    const problems: Problem[] = [];
    for (const file of files.rows) {
      if (ctx.signal.aborted) throw new JobError(`${NAME}: aborted`);
      let location: string;
      try {
        location = await storage.locate(file, de);
      } catch (e) {
        if (isSchemaMismatch(e)) throw e;
        if (e instanceof UnsupportedBackendError) {
          problems.push({ reason: e.message, file });
        } else {
          ctx.log.warn(`${NAME}::run: get_file failed: ${(e as Error).message}`);
        }
        continue;
      }
      let text: string;
      try {
        text = await EXTRACTOR_BY_MIME_TYPE[file.mime_type](location, { warn: (m) => ctx.log.warn(m), signal: ctx.signal });
      } catch (e) {
        if (e instanceof MissingProgramError) {
          problems.push({ reason: e.message, file });
          continue;
        }
        throw new JobError(`${NAME}: cannot read file ${file.id} '${file.file_name}' at ${location}: ${(e as Error).message}`);
      }
      if (file.full_text_id !== null) {
        await ctx.db.query('UPDATE file_full_texts SET full_text = $2 WHERE id = $1', [file.full_text_id, text]);
      } else {
        await ctx.db.query('INSERT INTO file_full_texts (file_id, full_text) VALUES ($1, $2)', [file.id, text]);
      }
    }

    if (problems.length > 0) {
      // Grouped by reason, so one missing program reads as one line listing its files.
      const byReason = new Map<string, string[]>();
      for (const p of problems) {
        const list = byReason.get(p.reason) ?? [];
        list.push(`file ${p.file.id} '${p.file.file_name}'`);
        byReason.set(p.reason, list);
      }
      const parts = [...byReason].map(([reason, list]) => `${reason}; no full text for ${list.join(', ')}`);
      throw new JobError(`${NAME}: ${parts.join('. ')}`);
    }
    return 'ok';
  },
};

class UnsupportedBackendError extends Error {}

interface Storage {
  /** Path of the file's newest version on disk; throws kivitendo's get_file errors. */
  locate(file: FileRow, de: boolean): Promise<string>;
}

async function loadStorage(ctx: JobContext): Promise<Storage> {
  const defaults = await ctx.db.query<{ doc_files: boolean | null; doc_webdav: boolean | null }>(
    'SELECT doc_files, doc_webdav FROM defaults LIMIT 1',
  );
  const docFiles = !!defaults.rows[0]?.doc_files;
  const docWebdav = !!defaults.rows[0]?.doc_webdav;
  const documentPath = ctx.config.sections['paths']?.['document_path'] ?? '';
  const absDocumentPath = documentPath ? path.resolve(ctx.kivitendoDir, documentPath) : '';
  const filesystemEnabled = docFiles && !!documentPath && isDir(absDocumentPath);

  const notEnabled = (backend: string, de: boolean) =>
    de ? `Dateimanagement-Subsystem "${backend}" nicht aktiviert` : `backend "${backend}" not enabled`;

  return {
    async locate(file, de) {
      if (file.backend === 'Webdav') {
        if (!docWebdav) throw new Error(notEnabled('Webdav', de));
        throw new UnsupportedBackendError(`file storage backend Webdav is not supported by kivitendo-task-server ${VERSION}`);
      }
      if (file.backend !== 'Filesystem') {
        throw new Error(de ? `Dateimanagement-Subsystem "${file.backend}" unbekannt` : `backend "${file.backend}" not found`);
      }
      if (!filesystemEnabled) throw new Error(notEnabled('Filesystem', de));
      const v = await ctx.db.query<{ version: number }>(
        'SELECT version FROM file_versions WHERE file_id = $1 ORDER BY version DESC LIMIT 1',
        [file.id],
      );
      if (v.rows.length === 0) throw new Error(`Could not find a file version for file with id ${file.id}`);
      // Three levels: <document_path>/<client id>/<id mod 1000, 4 digits>/<id>/<id>_<version>.
      const rel = path.join(
        documentPath,
        String(ctx.client.id),
        String(file.id % 1000).padStart(4, '0'),
        String(file.id),
        `${file.id}_${v.rows[0].version}`,
      );
      const abs = path.resolve(ctx.kivitendoDir, rel);
      if (!isFile(abs)) throw new Error(`No file found at ${rel}. Expected: ${file.file_name}, file.id: ${file.id}`);
      return abs;
    },
  };
}

