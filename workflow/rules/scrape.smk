if DEMO:

    rule demo_site:
        output:
            directory(R("demo_site")),
        log:
            log("demo_site"),
        benchmark:
            bench("demo_site")
        params:
            seed=config["source"].get("demo_seed", 0),
        resources:
            mem_mb=1000,
            runtime=10,
        shell:
            "microlib demo-site {output} --seed {params.seed} > {log} 2>&1"


def scrape_source(wildcards, input):
    # the demo library is served on 127.0.0.1 and scraped over HTTP like the real site
    if DEMO:
        return f"--serve {shlex.quote(str(input.site))}"
    return f"--base-url {shlex.quote(config['source']['base_url'])}"


checkpoint scrape:
    input:
        site=R("demo_site") if DEMO else [],
    output:
        R("raw/index.json"),
    log:
        log("scrape"),
    benchmark:
        bench("scrape")
    params:
        source=scrape_source,
        ids=shlex.quote(str(config["source"]["ids"])),
        outdir=R("raw"),
        args=cli_args(stage("scrape")),
    resources:
        mem_mb=2000,
        runtime=12 * 60,
    shell:
        "microlib scrape {params.source} --ids {params.ids} --out {params.outdir}"
        " {params.args} > {log} 2>&1"
