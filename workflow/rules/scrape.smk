if DEMO:

    rule demo_site:
        output:
            directory(R("demo_site")),
        log:
            log("demo_site"),
        benchmark:
            bench("demo_site")
        conda:
            CONDA_ENV
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            seed=config["source"].get("demo_seed", 0),
        shell:
            "microlib demo-site {output} --seed {params.seed} > {log} 2>&1"


checkpoint scrape:
    input:
        site=R("demo_site") if DEMO else [],
    output:
        R("raw/index.json"),
    log:
        log("scrape"),
    benchmark:
        bench("scrape")
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=12 * 60,
    params:
        source=scrape_source,
        ids=shlex.quote(str(config["source"]["ids"])),
        outdir=lambda w, output: os.path.dirname(output[0]),
        args=cli_args(stage("scrape")),
    shell:
        "microlib scrape {params.source} --ids {params.ids} --out {params.outdir}"
        " {params.args} > {log} 2>&1"
