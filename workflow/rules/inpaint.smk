# Cheap next to training: every training image is made before training starts (priority),
# so every training job is ready at once and none waits at the end of a run for an image
# made late.


rule inpaint:
    input:
        image=lambda w: R(f"segmented/{id_of(w)}.png"),
        mask=lambda w: R(f"masks/{id_of(w)}.png"),
    output:
        R("training/{name}.png"),
    log:
        log("inpaint/{name}"),
    benchmark:
        bench("inpaint/{name}")
    priority: 2
    conda:
        CONDA_ENV
    threads: threads_for("inpaint")
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        args=cli_args(stage("inpaint")),
    shell:
        "microlib inpaint --image {input.image} --mask {input.mask} --out {output}"
        " --threads {threads} {params.args} > {log} 2>&1"
