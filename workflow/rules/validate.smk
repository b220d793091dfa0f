rule validate:
    input:
        image=R("training/{name}.png"),
        volume=R("volumes/{name}.tif"),
    output:
        R("metrics/{name}.json"),
    log:
        log("validate/{name}"),
    benchmark:
        bench("validate/{name}")
    conda:
        CONDA_ENV
    threads: threads_for("validate")
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        args=cli_args(stage("validate")),
    shell:
        "microlib validate --image {input.image} --volume {input.volume} --out {output}"
        " --threads {threads} {params.args} > {log} 2>&1"
