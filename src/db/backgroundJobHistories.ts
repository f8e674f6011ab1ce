// Table background_job_histories (spec task-server.md §5.2, §7.4).
import type { Client } from './pg';

export interface HistoryRow {
  id?: number;
  package_name: string | null;
  run_at: string;
  status: 'success' | 'failure';
  result: string | null;
  error: string | null;
  data: string | null;
  description: string | null;
}

export async function insertHistory(db: Client, h: HistoryRow): Promise<HistoryRow> {
  const r = await db.query<{ id: number }>(
    `INSERT INTO background_job_histories (package_name, run_at, status, result, error, data, description)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
    [h.package_name, h.run_at, h.status, h.result, h.error, h.data, h.description],
  );
  return { ...h, id: r.rows[0].id };
}
