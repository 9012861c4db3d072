-- One norms profile per enterprise, for every surface (limits, class tables, В and ПР weights,
-- alert thresholds): a built-in profile's name, or NULL for the service's default profile.
-- It moves here from alert_settings, which goes with its own shift model (fixed blocks from a
-- start time): the alert engine's shifts are each workplace's schedule (workplaces.shift_starts
-- in enterprises.timezone, shift_duration_s), the one definition every surface uses.
ALTER TABLE enterprises ADD COLUMN norms_profile text
    CHECK (norms_profile IS NULL OR length(norms_profile) BETWEEN 1 AND 500);

-- An enterprise set to 'default' explicitly keeps it: NULL would follow the service's setting.
UPDATE enterprises e SET norms_profile = a.norms_profile
FROM alert_settings a
WHERE a.enterprise_id = e.id;

DROP TABLE alert_settings;
