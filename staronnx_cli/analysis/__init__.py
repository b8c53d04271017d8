"""What a run's files say, apart from drawing them: the best batch size per rate and rho_max (envelope), the verdict
in words (verdict), the noise behind the figures (noise), and the summary `sweep` prints and `--json` exports
(summary). `sweep`, `advise`, `plot` and `report` all read their answers here; plots/ only draws."""
