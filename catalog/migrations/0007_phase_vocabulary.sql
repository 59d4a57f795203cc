-- 0007: one vocabulary for phases and status. The streaming phase was
-- stored as CDC, which mirrors.status showed as RUNNING while mirror_events
-- said "phase CDC". It is stored as RUNNING now, the word of
-- mirrors.status, and the phase events recorded before are rewritten.
-- The mirrors view needs no change: its status is the phase when the
-- mirror is neither paused nor failing.

UPDATE sluice.mirrors SET phase = 'RUNNING' WHERE phase = 'CDC';

UPDATE sluice.mirror_events SET message = 'phase RUNNING'
WHERE kind = 'phase' AND message = 'phase CDC';
