rule generate:
    input:
        gen=R("models/{name}/{name}_Gen.pt"),
        params_data=R("models/{name}/{name}_params.data"),
        params_json=R("models/{name}/{name}_params.json"),
    output:
        R("volumes/{name}.tif"),
    log:
        log("generate/{name}"),
    benchmark:
        bench("generate/{name}")
    conda:
        CONDA_ENV
    threads: threads_for("generate")
    resources:
        mem_mb=16000,
        runtime=30,
    params:
        model_dir=lambda w: R(f"models/{w.name}"),
        args=cli_args(stage("generate")),
    shell:
        "microlib generate {params.model_dir} --out {output} --threads {threads}"
        " {params.args} > {log} 2>&1"
