rule media:
    input:
        volume=R("volumes/{name}.tif"),
        image=R("training/{name}.png"),
        segmented=lambda w: R(f"segmented/{id_of(w)}.png"),
        mask=lambda w: R(f"masks/{id_of(w)}.png"),
    output:
        [R(f"media/{{name}}/{{name}}_{kind}") for kind in MEDIA_KINDS],
    log:
        log("media/{name}"),
    benchmark:
        bench("media/{name}")
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        outdir=lambda w: R(f"media/{w.name}"),
        args=cli_args(stage("media")),
    shell:
        "microlib media --volume {input.volume} --image {input.image}"
        " --segmented {input.segmented} --mask {input.mask} --out-dir {params.outdir}"
        " --name {wildcards.name} {params.args} > {log} 2>&1"
