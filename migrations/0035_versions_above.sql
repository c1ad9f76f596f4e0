-- Who could reach a kept row when it was made (docs/versions.md, "Who sees what"): the
-- folders above its path then, from its bucket down to the folder holding it, as JSON
-- `[[owner, grp, mode], ...]` (`null` for a folder that had no row). A folder renamed away,
-- or deleted and its trash emptied, leaves no other trace of its bits, and a new folder of
-- the same name may let others in. Set on versions an overwrite kept and on every row of a
-- delete (there, the folders above the deleted path: the folders inside it have their own
-- markers in the same delete). NULL: kept before this migration, judged by the folders
-- there now.
ALTER TABLE versions ADD COLUMN above TEXT;
