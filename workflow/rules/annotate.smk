rule annotate:
    input:
        image=R("raw/{id}.jpg"),
        meta=R("raw/{id}.json"),
    output:
        R("annotations/{id}.json"),
    log:
        log("annotate/{id}"),
    benchmark:
        bench("annotate/{id}")
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        curation=(
            f"--curation {shlex.quote(_curation_file())}" if _curation_file() else ""
        ),
        entry_curation=curation_of,
        args=cli_args(stage("annotate"), skip=("curation",)),
        segment=annotate_segment_args(),
    shell:
        "microlib annotate entry --image {input.image} --meta {input.meta}"
        " --out {output} {params.curation} {params.args} {params.segment} > {log} 2>&1"


# the decision: filter thresholds, uniqueness across entries, included / excluded
checkpoint select:
    input:
        annotations_of_present,
    output:
        R("annotations/selection.json"),
    log:
        log("select"),
    benchmark:
        bench("select")
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        args=cli_args(stage("select")),
    shell:
        "microlib annotate select --out {output} {params.args} {input} > {log} 2>&1"
