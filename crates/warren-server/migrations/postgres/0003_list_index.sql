-- A team's sandbox list is paged newest first by id (UUID v7, so by creation time):
-- `WHERE team_id = ? [AND id < cursor] ORDER BY id DESC LIMIT n` reads this index in order
-- instead of sorting every row of the team.
CREATE INDEX sandboxes_team_id_idx ON sandboxes(team_id, id);
