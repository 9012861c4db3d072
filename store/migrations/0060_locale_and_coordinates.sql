-- The language a token's holder reads (kk, ru or en; null: negotiated from Accept-Language),
-- and where an enterprise is, for the digital map (WGS 84 degrees; both or neither).
ALTER TABLE api_tokens
    ADD COLUMN locale text CHECK (locale IN ('kk', 'ru', 'en'));

ALTER TABLE enterprises
    ADD COLUMN latitude  double precision CHECK (latitude BETWEEN -90 AND 90),
    ADD COLUMN longitude double precision CHECK (longitude BETWEEN -180 AND 180),
    ADD CONSTRAINT enterprises_coordinates_both
        CHECK ((latitude IS NULL) = (longitude IS NULL));
