-- same.sql: sets done to whether the source and the destination hold the
-- same rows: :src_digest and :dst_digest each return one text column (s
-- and d), a digest of every row, run on the source and destination peers.
:src_digest \gset
:dst_digest \gset
SELECT :'s' = :'d' AS done \gset
