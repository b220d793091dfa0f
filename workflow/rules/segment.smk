# Cheap, and every training job waits on it: runs before training (priority), as inpaint.


rule segment:
    input:
        image=R("raw/{id}.jpg"),
        annotation=R("annotations/{id}.json"),
    output:
        image=R("segmented/{id}.png"),
        mask=R("masks/{id}.png"),
    log:
        log("segment/{id}"),
    benchmark:
        bench("segment/{id}")
    priority: 2
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        args=segment_args(),
    shell:
        "microlib segment --image {input.image} --annotation {input.annotation}"
        " --out-image {output.image} --out-mask {output.mask} {params.args} > {log} 2>&1"
