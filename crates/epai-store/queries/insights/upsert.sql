-- Partner $1's insight of model $2 about subject $3: created, or replaced in place when the
-- model already wrote one about that subject (`created` tells which). No row when no model is
-- named $2.
INSERT INTO insights (partner_id, model_id, subject, content, metadata, created_at, updated_at)
SELECT $1, m.id, $3, $4, $5, $6, $6
FROM models m
WHERE m.name = $2
ON CONFLICT (partner_id, model_id, subject) WHERE subject IS NOT NULL
DO UPDATE SET content = EXCLUDED.content,
              metadata = EXCLUDED.metadata,
              updated_at = EXCLUDED.updated_at
RETURNING id, (xmax = 0) AS created
