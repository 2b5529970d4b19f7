-- Per-lane counters kept by every queue transition, so that a submit learns its queue position
-- without counting the queue: `queued` is the lane's IN_QUEUE jobs, `max_vtime` the highest
-- virtual time ever given in the lane (a job above it is behind every queued job).
ALTER TABLE queue_clock ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_clock ADD COLUMN max_vtime INTEGER NOT NULL DEFAULT 0;
INSERT INTO queue_clock (lane, vclock)
    SELECT DISTINCT lane, 0 FROM jobs WHERE lane NOT IN (SELECT lane FROM queue_clock);
UPDATE queue_clock SET
    queued = (SELECT count(*) FROM jobs WHERE jobs.lane = queue_clock.lane AND jobs.status = 'IN_QUEUE'),
    max_vtime = coalesce((SELECT max(vtime) FROM jobs WHERE jobs.lane = queue_clock.lane), 0);
