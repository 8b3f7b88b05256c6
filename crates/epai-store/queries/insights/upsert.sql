-- Partner $1's insight of model $2 about subject $3: created, or replaced in place when the
-- model already wrote one about that subject (`created` tells which). `changed` tells whether
-- anything but the content's `generated_at` differs from what was stored: a recomputation that
-- finds the same answer refreshes the row but is no news. No row when no model is named $2.
WITH previous AS (
  SELECT i.content - 'generated_at' AS content, i.metadata
  FROM insights i
  JOIN models m ON m.id = i.model_id
  WHERE i.partner_id = $1 AND m.name = $2 AND i.subject = $3
)
INSERT INTO insights (partner_id, model_id, subject, content, metadata, created_at, updated_at)
SELECT $1, m.id, $3, $4, $5, $6, $6
FROM models m
WHERE m.name = $2
ON CONFLICT (partner_id, model_id, subject) WHERE subject IS NOT NULL
DO UPDATE SET content = EXCLUDED.content,
              metadata = EXCLUDED.metadata,
              updated_at = EXCLUDED.updated_at
RETURNING id,
          (xmax = 0) AS created,
          NOT EXISTS (
            SELECT 1 FROM previous p
            WHERE p.content = ($4::jsonb - 'generated_at')
              AND p.metadata IS NOT DISTINCT FROM $5::jsonb
          ) AS changed
