-- What a report names of each instrument for an inspector: model, serial number and the last
-- calibration (date and certificate). A device that is one instrument (a sound level meter)
-- carries them itself; the sensors of a multi-channel station may each have their own, and a
-- sensor without a value shows its device's. calibrated_on and calibration_due of sensors exist
-- since 0001/0010.
ALTER TABLE devices
    ADD COLUMN model                   text,
    ADD COLUMN serial_number           text,
    ADD COLUMN calibrated_on           date,
    ADD COLUMN calibration_certificate text;

ALTER TABLE sensors
    ADD COLUMN model                   text,
    ADD COLUMN serial_number           text,
    ADD COLUMN calibration_certificate text;
