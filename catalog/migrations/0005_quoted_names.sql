-- 0005: table names are stored as Postgres's quote_ident renders each part,
-- with quotes only where a part needs them (public.users, "sch.ema".t1,
-- public."Upper.Dot"), so that a dot, a quote or upper case in a name is no
-- longer ambiguous. Names stored before were schema.table unquoted, read
-- back by splitting at the first dot: they are rewritten the same way.

UPDATE sluice.mirror_tables
SET source_table = quote_ident(split_part(source_table, '.', 1)) || '.' ||
                   quote_ident(substr(source_table, strpos(source_table, '.') + 1)),
    destination_table = quote_ident(split_part(destination_table, '.', 1)) || '.' ||
                        quote_ident(substr(destination_table, strpos(destination_table, '.') + 1))
WHERE strpos(source_table, '.') > 0 AND strpos(destination_table, '.') > 0;
