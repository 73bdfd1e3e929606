// Host stand-in for the parts of dl::Model / dl::TensorBase / fbs the adapter uses (declarations only).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fbs {
typedef enum {
    MODEL_LOCATION_IN_FLASH_RODATA = 0,
    MODEL_LOCATION_IN_FLASH_PARTITION = 1,
    MODEL_LOCATION_IN_SDCARD = 2,
} model_location_type_t;
} // namespace fbs

namespace dl {
typedef enum {
    DATA_TYPE_UNDEFINED = 0,
    DATA_TYPE_FLOAT = 1,
    DATA_TYPE_UINT8 = 2,
    DATA_TYPE_INT8 = 3,
    DATA_TYPE_UINT16 = 4,
    DATA_TYPE_INT16 = 5,
} dtype_t;

typedef enum { MEMORY_MANAGER_GREEDY = 0 } memory_manager_t;
typedef enum { RUNTIME_MODE_SINGLE_CORE = 0 } runtime_mode_t;

// ESP-DL keeps per-tensor or per-channel exponents in an object that converts to int.
class ExponentInfo {
public:
    ExponentInfo(int e = 0) : m_e(e) {}
    operator int() const { return m_e; }

private:
    int m_e;
};

class TensorBase {
public:
    int size;
    std::vector<int> shape; // NHWC
    dtype_t dtype;
    ExponentInfo exponent;
    void *data;
    int get_bytes();
    int get_exponent() { return exponent; }
};

class Model {
public:
    Model(const char *rodata_address_or_partition_label_or_path,
          fbs::model_location_type_t location = fbs::MODEL_LOCATION_IN_FLASH_RODATA,
          int max_internal_size = 0,
          memory_manager_t mm_type = MEMORY_MANAGER_GREEDY,
          const uint8_t *key = nullptr,
          bool param_copy = true);
    virtual ~Model();
    virtual void run(runtime_mode_t mode = RUNTIME_MODE_SINGLE_CORE);
    void minimize();
    virtual TensorBase *get_input();
    virtual TensorBase *get_input(const std::string &name);
    virtual TensorBase *get_output(const std::string &name);
};
} // namespace dl
