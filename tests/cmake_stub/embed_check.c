/* Writes the model embedded under ESP-DL's symbol names to argv[1]; prints its address alignment and length. */
#include <stdint.h>
#include <stdio.h>

extern const uint8_t _binary_yolo11_pose_espdl_start[];
extern const uint8_t _binary_yolo11_pose_espdl_end[];
extern const uint32_t yolo11_pose_espdl_length;

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: embed_check OUT\n");
        return 2;
    }
    size_t n = (size_t)(_binary_yolo11_pose_espdl_end - _binary_yolo11_pose_espdl_start);
    FILE *f = fopen(argv[1], "wb");
    if (!f || fwrite(_binary_yolo11_pose_espdl_start, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", argv[1]);
        return 1;
    }
    printf("align16=%d size=%zu length=%u\n", (int)((uintptr_t)_binary_yolo11_pose_espdl_start % 16 == 0), n,
           (unsigned)yolo11_pose_espdl_length);
    return 0;
}
