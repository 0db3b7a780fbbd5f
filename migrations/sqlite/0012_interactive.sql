-- The reply buttons or list menu a text campaign offers under its message (issue 14): JSON,
-- `{"buttons":["Yes","No"]}` or `{"menu":{"button":"Sizes","rows":["S","M"]}}`; NULL for none.
-- One column rather than a table: the choices are read and written whole with the campaign, and
-- their limits (3 buttons, 10 rows) keep it small.
ALTER TABLE campaigns ADD COLUMN choices TEXT;
