-- The reply buttons or list menu a text campaign offers under its message (issue 14): JSON,
-- `{"buttons":["Yes","No"]}` or `{"menu":{"button":"Sizes","rows":["S","M"]}}`; NULL for none.
-- One column rather than a table: the choices are read and written whole with the campaign, and
-- their limits (3 buttons, 10 rows) keep it small.
ALTER TABLE campaigns ADD COLUMN choices TEXT;

-- The button or row a recipient last tapped (its title as the campaign offers it), for the
-- report's `clicked.<title>` counts. The latest tap wins: it is the contact's choice.
ALTER TABLE recipients ADD COLUMN clicked TEXT;
